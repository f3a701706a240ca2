//! Weir's side of `--verify`: a query's result batches rendered as text cells, the form
//! [`super::answers::compare`] checks against a reference answer (stored, or DuckDB's).

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::Result;

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
