//! Helpers shared by test files: run a query through a [`Session`] and read its last column
//! as text, or all its rows as sorted `a | b | c` lines.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use weir::{Session, StatementResult};

/// Rows as `a | b | c` (NULL as `NULL`), sorted.
#[allow(dead_code)] // not every test file that includes this module uses it
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                f.iter()
                    .map(|f| f.value(i).to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
            );
        }
    }
    rows.sort();
    rows
}

/// The rows of the query's last column (a materialized changelog in streaming mode).
#[allow(dead_code)] // not every test file that includes this module uses it
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
