//! Helpers shared by the function test files: run a query through a [`Session`] and read its
//! last column as text.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::DataType;
use futures::TryStreamExt;
use weir::{Session, StatementResult};

/// The rows of the query's last column (a materialized changelog in streaming mode).
pub async fn column(s: &mut Session, sql: &str) -> Result<Vec<String>, String> {
    let mut results = s.execute_sql(sql).await.map_err(|e| e.to_string())?;
    let Some(StatementResult::Rows(r)) = results.pop() else {
        return Err(format!("no rows for {sql}"));
    };
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.map_err(|e| e.to_string())?;
    let b = if r.changelog {
        weir::session::materialize(&r.schema, &batches).map_err(|e| e.to_string())?
    } else {
        concat_batches(&r.schema, &batches).map_err(|e| e.to_string())?
    };
    let Some(col) = b.columns().last() else {
        return Err("no columns".into());
    };
    let col = cast(col, &DataType::Utf8).map_err(|e| e.to_string())?;
    let col = col.as_string::<i32>();
    Ok((0..col.len())
        .map(|i| {
            if col.is_null(i) {
                "NULL".to_string()
            } else {
                col.value(i).to_string()
            }
        })
        .collect())
}
