//! Catalog metadata for Flight SQL clients (`GetCatalogs`, `GetDbSchemas`, `GetTables`,
//! `GetTableTypes`, `GetSqlInfo`). The front door does not reach past the [`Session`]: every
//! answer comes from SQL run on the client's session (`SHOW CATALOGS`, `SHOW DATABASES FROM c`,
//! `SHOW TABLES FROM c.d`, `SHOW VIEWS FROM c.d`, and `SELECT * FROM c.d.t` planned but never
//! read, for a table's Arrow schema).

use std::sync::Arc;

use arrow_flight::sql::SqlInfo;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::SchemaRef;
use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::session::{Session, StatementResult};

/// Table type of tables (including temporary ones).
pub const TABLE: &str = "TABLE";
/// Table type of views.
pub const VIEW: &str = "VIEW";

/// The `GetSqlInfo` answers: server name "Weir", its version, what it supports.
///
/// # Errors
/// `Internal` if arrow-flight rejects the values (a bug).
pub fn sql_info() -> Result<SqlInfoData> {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "Weir");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    builder.append(SqlInfo::FlightSqlServerReadOnly, false);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0i32); // SQL_TRANSACTION_NONE
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "`");
    builder.append(SqlInfo::SqlDdlCatalog, true);
    builder.append(SqlInfo::SqlDdlSchema, true);
    builder.append(SqlInfo::SqlDdlTable, true);
    builder
        .build()
        .map_err(|e| Error::internal(format!("cannot build the SqlInfo table: {e}")))
}

/// Quotes an identifier for Flink SQL: `` `a``b` ``.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Runs one statement on the session.
pub async fn run(session: &mut Session, sql: &str) -> Result<StatementResult> {
    let mut statements = session.parse(sql)?;
    match (statements.pop(), statements.is_empty()) {
        (Some(statement), true) => session.execute(&statement).await,
        (None, _) => Err(Error::invalid("the SQL text holds no statement")),
        (Some(_), false) => Err(Error::not_supported(
            "several statements in one Flight SQL call are not supported yet; send one statement per call",
        )),
    }
}

/// Runs a metadata statement and reads the strings of its first column.
async fn first_column(session: &mut Session, sql: &str) -> Result<Vec<String>> {
    let rows = match run(session, sql).await? {
        StatementResult::Rows(rows) => rows,
        StatementResult::Status(_) => {
            return Err(Error::internal(format!("`{sql}` returned no rows")));
        }
    };
    let batches: Vec<_> = rows.stream.try_collect().await?;
    let mut out = Vec::new();
    for batch in &batches {
        let column = batch
            .columns()
            .first()
            .ok_or_else(|| Error::internal(format!("`{sql}` returned no column")))?;
        let strings = column
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::internal(format!("`{sql}` returned a non-string column")))?;
        out.extend(
            (0..strings.len())
                .filter(|&i| !strings.is_null(i))
                .map(|i| strings.value(i).to_string()),
        );
    }
    Ok(out)
}

/// The catalogs (`SHOW CATALOGS`).
pub async fn catalogs(session: &mut Session) -> Result<Vec<String>> {
    first_column(session, "SHOW CATALOGS").await
}

/// The databases of a catalog (`SHOW DATABASES FROM c`).
pub async fn databases(session: &mut Session, catalog: &str) -> Result<Vec<String>> {
    first_column(session, &format!("SHOW DATABASES FROM {}", quote(catalog))).await
}

/// The tables and views of a database with their table type, by name.
pub async fn tables(
    session: &mut Session,
    catalog: &str,
    database: &str,
) -> Result<Vec<(String, &'static str)>> {
    let from = format!("{}.{}", quote(catalog), quote(database));
    let all = first_column(session, &format!("SHOW TABLES FROM {from}")).await?;
    let views = first_column(session, &format!("SHOW VIEWS FROM {from}")).await?;
    Ok(all
        .into_iter()
        .map(|name| {
            let kind = if views.contains(&name) { VIEW } else { TABLE };
            (name, kind)
        })
        .collect())
}

/// The Arrow schema a table or view is read with: `SELECT *` planned, never read.
pub async fn table_schema(
    session: &mut Session,
    catalog: &str,
    database: &str,
    table: &str,
) -> Result<SchemaRef> {
    let sql = format!(
        "SELECT * FROM {}.{}.{}",
        quote(catalog),
        quote(database),
        quote(table)
    );
    match run(session, &sql).await? {
        // Dropping the stream unread cancels the query before it reads anything.
        StatementResult::Rows(rows) => Ok(Arc::clone(&rows.schema)),
        StatementResult::Status(_) => Err(Error::internal(format!("`{sql}` returned no rows"))),
    }
}

/// Flight SQL filter patterns (as SQL LIKE): `%` any run of characters, `_` one character.
pub fn like_matches(pattern: &str, value: &str) -> bool {
    crate::session::sql_like(pattern, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionOptions;

    #[test]
    fn quoting_escapes_backticks() {
        assert_eq!(quote("t"), "`t`");
        assert_eq!(quote("a`b"), "`a``b`");
    }

    #[test]
    fn like_patterns() {
        assert!(like_matches("%", ""));
        assert!(like_matches("ord%", "orders"));
        assert!(like_matches("o_ders", "orders"));
        assert!(!like_matches("o_ders", "oders"));
        assert!(!like_matches("ord", "orders"));
        assert!(like_matches("%ers", "orders"));
    }

    #[test]
    fn sql_info_builds() {
        let info = sql_info().unwrap();
        let batch = info
            .record_batch([SqlInfo::FlightSqlServerName as u32])
            .unwrap();
        assert_eq!(batch.num_rows(), 1);
    }

    #[tokio::test]
    async fn metadata_through_sql() {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        session
            .execute_sql(
                "CREATE DATABASE `my db`;
                 CREATE TABLE `my db`.t (a INT, b STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
                 CREATE VIEW `my db`.v AS SELECT a FROM `my db`.t;",
            )
            .await
            .unwrap();
        let catalogs = catalogs(&mut session).await.unwrap();
        assert!(
            catalogs.contains(&"default_catalog".to_string()),
            "{catalogs:?}"
        );
        let dbs = databases(&mut session, "default_catalog").await.unwrap();
        assert!(dbs.contains(&"my db".to_string()), "{dbs:?}");
        let tables = tables(&mut session, "default_catalog", "my db")
            .await
            .unwrap();
        assert_eq!(
            tables,
            vec![("t".to_string(), TABLE), ("v".to_string(), VIEW)]
        );
        let schema = table_schema(&mut session, "default_catalog", "my db", "v")
            .await
            .unwrap();
        assert_eq!(schema.fields().len(), 1);
        assert_eq!(schema.field(0).name(), "a");
        let missing = databases(&mut session, "nope").await.err().map(|e| e.code);
        assert_eq!(missing, Some(crate::error::ErrorCode::NotFound));
    }

    #[tokio::test]
    async fn one_statement_per_call() {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        assert!(run(&mut session, "").await.is_err());
        assert!(run(&mut session, "SELECT 1; SELECT 2").await.is_err());
        assert!(run(&mut session, "SELECT 1").await.is_ok());
    }
}
