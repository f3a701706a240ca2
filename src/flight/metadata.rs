//! Catalog metadata for Flight SQL clients (`GetCatalogs`, `GetDbSchemas`, `GetTables`,
//! `GetTableTypes`, `GetSqlInfo`). The front door does not reach past the [`Session`]: every
//! answer comes from SQL run on the client's session (`SHOW CATALOGS`, `SHOW DATABASES FROM c`,
//! `SHOW TABLES FROM c.d`, `SHOW VIEWS FROM c.d`, and `SELECT * FROM c.d.t` planned but never
//! read, for a table's Arrow schema).

use std::sync::Arc;

use arrow_flight::sql::SqlInfo;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
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
    builder.append(SqlInfo::FlightSqlServerCancel, true);
    builder.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    builder.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    builder.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "`");
    builder.append(SqlInfo::SqlDdlCatalog, true);
    builder.append(SqlInfo::SqlDdlSchema, true);
    builder.append(SqlInfo::SqlDdlTable, true);
    // Identifiers are case-sensitive, quoted or not (SQL_CASE_SENSITIVE = 1).
    builder.append(SqlInfo::SqlIdentifierCase, 1i32);
    builder.append(SqlInfo::SqlQuotedIdentifierCase, 1i32);
    builder.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // NULLs sort first ascending, as in Flink (SQL_NULLS_SORTED_AT_START = 2).
    builder.append(SqlInfo::SqlNullOrdering, 2i32);
    builder.append(SqlInfo::SqlKeywords, KEYWORDS);
    builder.append(SqlInfo::SqlNumericFunctions, NUMERIC_FUNCTIONS);
    builder.append(SqlInfo::SqlStringFunctions, STRING_FUNCTIONS);
    builder.append(SqlInfo::SqlSystemFunctions, &[] as &[&str]);
    builder.append(SqlInfo::SqlDatetimeFunctions, DATETIME_FUNCTIONS);
    builder.append(SqlInfo::SqlSearchStringEscape, "\\");
    builder.append(SqlInfo::SqlExtraNameCharacters, "");
    builder.append(SqlInfo::SqlSupportsColumnAliasing, true);
    builder.append(SqlInfo::SqlNullPlusNullIsNull, true);
    builder.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    builder.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    builder.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    builder.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    // Bit mask: SQL_GROUP_BY_UNRELATED (1) | SQL_GROUP_BY_BEYOND_SELECT (2).
    builder.append(SqlInfo::SqlSupportedGroupBy, 3i32);
    builder.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    builder.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    // SQL_FULL_OUTER_JOINS = 2.
    builder.append(SqlInfo::SqlOuterJoinsSupportLevel, 2i32);
    builder.append(SqlInfo::SqlSchemaTerm, "database");
    builder.append(SqlInfo::SqlProcedureTerm, "procedure");
    builder.append(SqlInfo::SqlCatalogTerm, "catalog");
    builder.append(SqlInfo::SqlCatalogAtStart, true);
    builder.append(SqlInfo::SqlSelectForUpdateSupported, false);
    builder.append(SqlInfo::SqlStoredProceduresSupported, false);
    builder.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    builder.append(SqlInfo::SqlTransactionsSupported, false);
    builder.append(SqlInfo::SqlBatchUpdatesSupported, false);
    builder.append(SqlInfo::SqlSavepointsSupported, false);
    builder.append(SqlInfo::SqlNamedParametersSupported, false);
    builder.append(SqlInfo::SqlMaxStatements, 0i32);
    builder
        .build()
        .map_err(|e| Error::internal(format!("cannot build the SqlInfo table: {e}")))
}

const KEYWORDS: &[&str] = &[
    "CATALOG",
    "DATABASE",
    "DATABASES",
    "FUNCTION",
    "JOBS",
    "MODULES",
    "STATEMENT",
    "TEMPORARY",
    "VIEWS",
    "WATERMARK",
    "WATERMARKS",
];
const NUMERIC_FUNCTIONS: &[&str] = &[
    "ABS", "CEIL", "EXP", "FLOOR", "LN", "LOG10", "MOD", "POWER", "RAND", "ROUND", "SIGN", "SQRT",
    "TRUNCATE",
];
const STRING_FUNCTIONS: &[&str] = &[
    "CHAR_LENGTH",
    "CONCAT",
    "INITCAP",
    "LOWER",
    "LPAD",
    "LTRIM",
    "OVERLAY",
    "POSITION",
    "REPLACE",
    "RPAD",
    "RTRIM",
    "SUBSTRING",
    "TRIM",
    "UPPER",
];
const DATETIME_FUNCTIONS: &[&str] = &[
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "DATE_FORMAT",
    "EXTRACT",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "NOW",
    "TIMESTAMPADD",
    "TIMESTAMPDIFF",
    "TO_DATE",
    "TO_TIMESTAMP",
];

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

/// A table's primary key columns in key order (from `DESCRIBE`, whose `key` column says
/// `PRI(a, b)` on each key column); empty when it has none.
pub async fn primary_key(
    session: &mut Session,
    catalog: &str,
    database: &str,
    table: &str,
) -> Result<Vec<String>> {
    let sql = format!(
        "DESCRIBE {}.{}.{}",
        quote(catalog),
        quote(database),
        quote(table)
    );
    let rows = match run(session, &sql).await? {
        StatementResult::Rows(rows) => rows,
        StatementResult::Status(_) => {
            return Err(Error::internal(format!("`{sql}` returned no rows")));
        }
    };
    let batches: Vec<_> = rows.stream.try_collect().await?;
    for batch in &batches {
        let Some(keys) = batch
            .column_by_name("key")
            .and_then(|c| c.as_string_opt::<i32>())
        else {
            return Err(Error::internal(format!("`{sql}` returned no `key` column")));
        };
        for i in 0..keys.len() {
            if keys.is_null(i) {
                continue;
            }
            if let Some(list) = keys
                .value(i)
                .strip_prefix("PRI(")
                .and_then(|r| r.strip_suffix(')'))
            {
                return Ok(list.split(", ").map(str::to_string).collect());
            }
        }
    }
    Ok(Vec::new())
}

/// The `GetPrimaryKeys` result schema.
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// The `GetPrimaryKeys` rows of one table.
pub fn primary_keys_batch(
    catalog: &str,
    database: &str,
    table: &str,
    columns: &[String],
) -> Result<RecordBatch> {
    let n = columns.len();
    let repeat = |s: &str| Arc::new(StringArray::from(vec![s; n])) as ArrayRef;
    let sequence: Vec<i32> = (1..=n)
        .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
        .collect();
    Ok(RecordBatch::try_new(
        primary_keys_schema(),
        vec![
            repeat(catalog),
            repeat(database),
            repeat(table),
            Arc::new(StringArray::from(columns.to_vec())),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(Int32Array::from(sequence)),
        ],
    )?)
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
    async fn primary_keys_in_key_order() {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        session
            .execute_sql(
                "CREATE TABLE k (a INT, b STRING, c INT, PRIMARY KEY (c, a) NOT ENFORCED) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
                 CREATE TABLE n (a INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');",
            )
            .await
            .unwrap();
        let pk = primary_key(&mut session, "default_catalog", "default_database", "k")
            .await
            .unwrap();
        assert_eq!(pk, vec!["c".to_string(), "a".to_string()]);
        let none = primary_key(&mut session, "default_catalog", "default_database", "n")
            .await
            .unwrap();
        assert!(none.is_empty());
        let batch = primary_keys_batch("c", "d", "k", &pk).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let seq = batch
            .column(5)
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        assert_eq!(seq.values().to_vec(), vec![1, 2]);
    }

    #[tokio::test]
    async fn one_statement_per_call() {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        assert!(run(&mut session, "").await.is_err());
        assert!(run(&mut session, "SELECT 1; SELECT 2").await.is_err());
        assert!(run(&mut session, "SELECT 1").await.is_ok());
    }
}
