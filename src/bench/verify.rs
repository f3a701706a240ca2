//! Answer checking for `--verify`: the same query is run by DuckDB (through `python3`, when the
//! `duckdb` module is importable) over the same Parquet files, and both answers are compared
//! row by row, numbers with a small tolerance. Without DuckDB verification is skipped with a
//! message; no answer files are shipped.

use std::path::Path;
use std::process::Command;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};

use super::data::TABLES;

/// Why DuckDB cannot be used, or `None` when `python3 -c 'import duckdb'` works.
pub fn duckdb_unavailable() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(_) => Some("the python3 module 'duckdb' is not installed".to_string()),
        Err(e) => Some(format!("python3 cannot be run ({e})")),
    }
}

const SCRIPT: &str = r#"
import sys, json, duckdb
data, sql = sys.argv[1], sys.stdin.read()
con = duckdb.connect()
for t in sys.argv[2:]:
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}/*.parquet')")
rows = con.execute(sql).fetchall()
print(json.dumps([[None if v is None else str(v) for v in r] for r in rows]))
"#;

/// Runs `sql` (Weir's Flink text, backticks turned into double quotes) in DuckDB over the data
/// in `data_dir`; every value as text.
pub fn duckdb_answer(data_dir: &Path, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(data_dir)
        .args(TABLES)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("cannot run python3", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(sql.replace('`', "\"").as_bytes())
            .map_err(|e| Error::io("cannot write to python3", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("cannot run python3", e))?;
    if !out.status.success() {
        return Err(Error::external(format!(
            "DuckDB failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::external(format!("cannot read DuckDB's answer: {e}")))
}

/// Weir's answer as text, one `Vec` per row (`None` for NULL).
pub fn batches_as_text(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let mut cells = Vec::with_capacity(formatters.len());
            for (f, col) in formatters.iter().zip(batch.columns()) {
                cells.push(if col.is_null(row) {
                    None
                } else {
                    Some(f.value(row).to_string())
                });
            }
            rows.push(cells);
        }
    }
    Ok(rows)
}

/// Compares two answers; `Err(message)` describes the first difference.
pub fn compare(
    weir: &[Vec<Option<String>>],
    expected: &[Vec<Option<String>>],
) -> std::result::Result<(), String> {
    if weir.len() != expected.len() {
        return Err(format!(
            "{} rows, expected {} (DuckDB)",
            weir.len(),
            expected.len()
        ));
    }
    for (i, (a, b)) in weir.iter().zip(expected).enumerate() {
        if a.len() != b.len() {
            return Err(format!(
                "row {}: {} columns, expected {}",
                i + 1,
                a.len(),
                b.len()
            ));
        }
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            if !cells_match(x.as_deref(), y.as_deref()) {
                return Err(format!(
                    "row {} column {}: {:?}, expected {:?} (DuckDB)",
                    i + 1,
                    j + 1,
                    x,
                    y
                ));
            }
        }
    }
    Ok(())
}

/// Equal text, or numbers equal within 1e-6 relative (0.01 absolute for small values).
fn cells_match(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) if a.trim() == b.trim() => true,
        (Some(a), Some(b)) => match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            (Ok(x), Ok(y)) => (x - y).abs() <= (1e-6 * x.abs().max(y.abs())).max(0.01),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn row(cells: &[Option<&str>]) -> Vec<Option<String>> {
        cells.iter().map(|c| c.map(String::from)).collect()
    }

    #[test]
    fn compare_tolerates_number_formatting() {
        let a = vec![row(&[Some("A"), Some("12.5000"), None])];
        let b = vec![row(&[Some("A"), Some("12.5"), None])];
        assert_eq!(compare(&a, &b), Ok(()));
        let c = vec![row(&[Some("A"), Some("13.5"), None])];
        assert!(compare(&a, &c).is_err_and(|m| m.contains("row 1 column 2")));
        assert!(compare(&a, &[]).is_err_and(|m| m.contains("1 rows, expected 0")));
        let d = vec![row(&[Some("B"), Some("12.5"), None])];
        assert!(compare(&a, &d).is_err());
    }

    #[test]
    fn batches_render_as_text() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("x"), Some("y")])),
            ],
        )?;
        let text = batches_as_text(&[batch])?;
        assert_eq!(
            text,
            vec![row(&[Some("1"), Some("x")]), row(&[None, Some("y")])]
        );
        Ok(())
    }
}
