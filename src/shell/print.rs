//! Result printing for the shell and the `weir` binary: the last step of the data path, where a
//! statement's Arrow record batches (or status line, or error) become text on the terminal.
//!
//! Everything here is a pure function (or a small state machine) from schema + batches to a
//! `String`, so it can be tested without a session or a terminal:
//! - [`format_table`]: a whole result as one bordered table (`table` result mode);
//! - [`TablePrinter`]: the same table, batch by batch, for streaming (`tableau`, `changelog`);
//! - [`CsvPrinter`] / [`JsonPrinter`]: machine-readable output for `--output csv|json`;
//! - [`format_footer`], [`format_status`], [`format_error`]: the lines around results.

use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};

/// How NULL is shown in tables (like Flink's SQL client).
pub const NULL_TEXT: &str = "<NULL>";

/// Columns that, in `changelog` mode, already hold a row kind (`+I`, `-U`, `+U`, `-D`).
const ROW_KIND_COLUMNS: [&str; 2] = ["$row_kind", "op"];

/// The result modes of `SET 'sql-client.execution.result-mode' = '...'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultMode {
    /// Collect the whole result, then print one aligned table.
    #[default]
    Table,
    /// Print the table as batches arrive.
    Tableau,
    /// Like `tableau`, with a first column `op` holding each row's kind (`+I`, ...).
    Changelog,
}

impl ResultMode {
    /// Parses the option value (case-insensitive); `None` gives the default (`table`).
    pub fn parse(value: Option<&str>) -> Result<Self> {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(ResultMode::Table),
            Some(v) => match v.as_str() {
                "table" => Ok(ResultMode::Table),
                "tableau" => Ok(ResultMode::Tableau),
                "changelog" => Ok(ResultMode::Changelog),
                _ => Err(Error::invalid(format!(
                    "unknown result mode '{v}' for 'sql-client.execution.result-mode' \
                     (expected 'table', 'tableau' or 'changelog')"
                ))),
            },
        }
    }
}

/// Which columns of a result a table shows, and under which headers: in `changelog` mode an
/// `op` column comes first, either taken from the result (a string column named `$row_kind` or
/// `op`) or made up (`+I` for every row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    /// The header line's cells.
    pub headers: Vec<String>,
    /// Whether each shown column is right-aligned (numbers are).
    pub right_align: Vec<bool>,
    /// For each shown column, the result column it comes from; `None` is the made-up `op`.
    sources: Vec<Option<usize>>,
}

impl TableShape {
    /// The shape of `schema` in `mode`.
    pub fn new(schema: &Schema, mode: ResultMode) -> Self {
        let mut headers = Vec::new();
        let mut right_align = Vec::new();
        let mut sources = Vec::new();
        let row_kind = match mode {
            ResultMode::Changelog => row_kind_column(schema),
            _ => None,
        };
        if mode == ResultMode::Changelog {
            headers.push("op".to_string());
            right_align.push(false);
            sources.push(row_kind);
        }
        for (i, field) in schema.fields().iter().enumerate() {
            if Some(i) == row_kind {
                continue;
            }
            headers.push(field.name().clone());
            right_align.push(field.data_type().is_numeric());
            sources.push(Some(i));
        }
        Self {
            headers,
            right_align,
            sources,
        }
    }

    /// The cells of a batch's rows, formatted with Arrow's display formatting (NULL as
    /// [`NULL_TEXT`]).
    pub fn format_rows(&self, batch: &RecordBatch) -> Result<Vec<Vec<String>>> {
        let formatters = self
            .sources
            .iter()
            .map(|source| match source {
                Some(i) => match batch.columns().get(*i) {
                    Some(array) => {
                        let options = display_options(array.data_type());
                        Ok(Some(ArrayFormatter::try_new(array.as_ref(), &options)?))
                    }
                    None => Err(Error::internal(format!(
                        "result batch has {} columns, expected at least {}",
                        batch.num_columns(),
                        i + 1
                    ))),
                },
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let mut cells = Vec::with_capacity(formatters.len());
            for formatter in &formatters {
                let cell = match formatter {
                    Some(f) => clean_cell(&f.value(row).try_to_string()?),
                    None => "+I".to_string(),
                };
                cells.push(cell);
            }
            rows.push(cells);
        }
        Ok(rows)
    }
}

/// The index of a string column named `$row_kind` or `op`, if the schema has one.
fn row_kind_column(schema: &Schema) -> Option<usize> {
    ROW_KIND_COLUMNS.iter().find_map(|name| {
        schema.fields().iter().position(|f| {
            f.name() == name
                && matches!(
                    f.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
        })
    })
}

/// Makes a cell printable on one line: control characters (newlines, tabs) are escaped.
fn clean_cell(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// The display width of a cell (characters; no East Asian wide-character support).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// `+----+-----+`
fn border(widths: &[usize]) -> String {
    let mut line = String::from("+");
    for w in widths {
        line.push_str(&"-".repeat(w + 2));
        line.push('+');
    }
    line.push('\n');
    line
}

/// `| a  |   1 |`
fn row_line(cells: &[String], widths: &[usize], right_align: &[bool]) -> String {
    let mut line = String::from("|");
    for (i, w) in widths.iter().enumerate() {
        let cell = cells.get(i).map(String::as_str).unwrap_or("");
        let pad = w.saturating_sub(width(cell));
        line.push(' ');
        if right_align.get(i).copied().unwrap_or(false) {
            line.push_str(&" ".repeat(pad));
            line.push_str(cell);
        } else {
            line.push_str(cell);
            line.push_str(&" ".repeat(pad));
        }
        line.push_str(" |");
    }
    line.push('\n');
    line
}

/// Column widths that fit the headers and the given rows.
fn widths_for(headers: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    widths
}

/// A whole result as one bordered table, or the empty string when there are no rows (the footer
/// then says `Empty set`).
pub fn format_table(schema: &Schema, batches: &[RecordBatch], mode: ResultMode) -> Result<String> {
    let mut printer = TablePrinter::new(schema, mode);
    let mut rows = Vec::new();
    for batch in batches {
        rows.extend(printer.shape.format_rows(batch)?);
    }
    let mut out = printer.push_rows(rows);
    out.push_str(&printer.finish());
    Ok(out)
}

/// Prints a table as batches arrive. Column widths are fixed by the header and the first
/// non-empty batch; later, wider cells widen their row only (nothing is cut off).
#[derive(Debug)]
pub struct TablePrinter {
    shape: TableShape,
    widths: Option<Vec<usize>>,
    rows: usize,
}

impl TablePrinter {
    /// A printer for results of `schema` in `mode`.
    pub fn new(schema: &Schema, mode: ResultMode) -> Self {
        Self {
            shape: TableShape::new(schema, mode),
            widths: None,
            rows: 0,
        }
    }

    /// The text for one more batch: the header first time rows appear, then the rows.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<String> {
        let rows = self.shape.format_rows(batch)?;
        Ok(self.push_rows(rows))
    }

    fn push_rows(&mut self, rows: Vec<Vec<String>>) -> String {
        if rows.is_empty() {
            return String::new();
        }
        let mut out = String::new();
        let widths = match &self.widths {
            Some(w) => w.clone(),
            None => {
                let w = widths_for(&self.shape.headers, &rows);
                out.push_str(&border(&w));
                out.push_str(&row_line(&self.shape.headers, &w, &self.shape.right_align));
                out.push_str(&border(&w));
                self.widths = Some(w.clone());
                w
            }
        };
        for row in &rows {
            out.push_str(&row_line(row, &widths, &self.shape.right_align));
        }
        self.rows += rows.len();
        out
    }

    /// The closing border (nothing if no rows were printed).
    pub fn finish(&self) -> String {
        match &self.widths {
            Some(w) => border(w),
            None => String::new(),
        }
    }

    /// Rows printed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// `3 rows in set (0.12 sec)`, `1 row in set (...)`, `Empty set (...)`.
pub fn format_footer(rows: usize, elapsed: Duration) -> String {
    let time = format_elapsed(elapsed);
    match rows {
        0 => format!("Empty set ({time})"),
        1 => format!("1 row in set ({time})"),
        n => format!("{} rows in set ({time})", group_thousands(n as u64)),
    }
}

/// `[INFO] Table created. (0.01 sec)`.
pub fn format_status(message: &str, elapsed: Duration) -> String {
    format!("[INFO] {message} ({})", format_elapsed(elapsed))
}

/// `[ERROR] <the error's full message>`.
pub fn format_error(err: &Error) -> String {
    format!("[ERROR] {err}")
}

/// `0.12 sec`.
pub fn format_elapsed(elapsed: Duration) -> String {
    format!("{:.2} sec", elapsed.as_secs_f64())
}

/// `1234567` → `1,234,567`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// CSV output (`--output csv`): a header line, then one line per row, across batches.
#[derive(Debug, Default)]
pub struct CsvPrinter {
    header_written: bool,
}

impl CsvPrinter {
    /// A printer that writes the header with the first batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// The CSV text of one batch (with the header if it is the first).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<String> {
        let mut writer = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(!self.header_written)
            .build(Vec::new());
        writer.write(batch)?;
        self.header_written = true;
        bytes_to_string(writer.into_inner())
    }

    /// The header alone if no batch was written (a result without rows still names its columns).
    pub fn finish(&mut self, schema: &Schema) -> Result<String> {
        if self.header_written {
            return Ok(String::new());
        }
        let empty = RecordBatch::new_empty(std::sync::Arc::new(schema.clone()));
        self.push(&empty)
    }
}

/// JSON output (`--output json`): one object per row and line; NULLs are written as `null`.
#[derive(Debug, Default)]
pub struct JsonPrinter;

impl JsonPrinter {
    /// A newline-delimited JSON printer.
    pub fn new() -> Self {
        Self
    }

    /// The JSON lines of one batch.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<String> {
        let mut writer = datafusion::arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, datafusion::arrow::json::writer::LineDelimited>(Vec::new());
        writer.write(batch)?;
        writer.finish()?;
        bytes_to_string(writer.into_inner())
    }
}

fn bytes_to_string(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| Error::internal(format!("output is not UTF-8: {e}")))
}

/// How a column's values are shown: NULL as [`NULL_TEXT`], timestamps as Flink's client shows
/// them (`2024-01-01 10:00:00.000`, with as many fraction digits as the type's precision).
fn display_options(data_type: &DataType) -> FormatOptions<'static> {
    let options = FormatOptions::new().with_null(NULL_TEXT);
    let DataType::Timestamp(unit, tz) = data_type else {
        return options;
    };
    let format = match unit {
        TimeUnit::Second => "%Y-%m-%d %H:%M:%S",
        TimeUnit::Millisecond => "%Y-%m-%d %H:%M:%S%.3f",
        TimeUnit::Microsecond => "%Y-%m-%d %H:%M:%S%.6f",
        TimeUnit::Nanosecond => "%Y-%m-%d %H:%M:%S%.9f",
    };
    if tz.is_some() {
        options.with_timestamp_tz_format(Some(format))
    } else {
        options.with_timestamp_format(Some(format))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;

    use super::*;

    #[test]
    fn timestamps_are_shown_as_flink_shows_them() {
        use datafusion::arrow::array::{
            Array, TimestampMicrosecondArray, TimestampMillisecondArray,
        };
        let ms = TimestampMillisecondArray::from(vec![Some(1_704_103_200_500), None]);
        let options = display_options(ms.data_type());
        let f = ArrayFormatter::try_new(&ms, &options).unwrap();
        assert_eq!(f.value(0).to_string(), "2024-01-01 10:00:00.500");
        assert_eq!(f.value(1).to_string(), NULL_TEXT);
        let us = TimestampMicrosecondArray::from(vec![1_704_103_200_000_001]).with_timezone("UTC");
        let options = display_options(us.data_type());
        let f = ArrayFormatter::try_new(&us, &options).unwrap();
        assert_eq!(f.value(0).to_string(), "2024-01-01 10:00:00.000001");
    }

    fn string_column(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn batch(ids: &[Option<i64>], names: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                string_column(names),
            ],
        )
        .unwrap()
    }

    #[test]
    fn table_is_aligned_with_nulls() {
        let b = batch(&[Some(1), Some(100), None], &[Some("a"), None, Some("ccc")]);
        let out = format_table(&b.schema(), &[b], ResultMode::Table).unwrap();
        let expected = "\
+--------+--------+
|     id | name   |
+--------+--------+
|      1 | a      |
|    100 | <NULL> |
| <NULL> | ccc    |
+--------+--------+
";
        assert_eq!(out, expected);
    }

    #[test]
    fn table_over_several_batches_and_empty() {
        let b1 = batch(&[Some(1)], &[Some("x")]);
        let b2 = batch(&[Some(22)], &[Some("yy")]);
        let schema = b1.schema();
        let out = format_table(&schema, &[b1, b2], ResultMode::Table).unwrap();
        assert_eq!(
            out,
            "+----+------+\n| id | name |\n+----+------+\n|  1 | x    |\n| 22 | yy   |\n+----+------+\n"
        );
        let empty = batch(&[], &[]);
        assert_eq!(
            format_table(&schema, &[empty], ResultMode::Table).unwrap(),
            ""
        );
        assert_eq!(format_table(&schema, &[], ResultMode::Tableau).unwrap(), "");
    }

    #[test]
    fn streaming_printer_keeps_first_widths() {
        let b1 = batch(&[Some(1)], &[Some("x")]);
        let mut p = TablePrinter::new(&b1.schema(), ResultMode::Tableau);
        let first = p.push(&b1).unwrap();
        assert_eq!(
            first,
            "+----+------+\n| id | name |\n+----+------+\n|  1 | x    |\n"
        );
        let second = p.push(&batch(&[Some(2)], &[Some("longer")])).unwrap();
        assert_eq!(second, "|  2 | longer |\n");
        assert_eq!(p.finish(), "+----+------+\n");
        assert_eq!(p.rows(), 2);
    }

    #[test]
    fn changelog_adds_op_column() {
        let b = batch(&[Some(7)], &[Some("q")]);
        let out = format_table(&b.schema(), &[b], ResultMode::Changelog).unwrap();
        assert_eq!(
            out,
            "+----+----+------+\n| op | id | name |\n+----+----+------+\n| +I |  7 | q    |\n+----+----+------+\n"
        );
    }

    #[test]
    fn changelog_uses_existing_row_kind_column() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("$row_kind", DataType::Utf8, false),
            Field::new("v", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                string_column(&[Some("-U"), Some("+U")]),
                Arc::new(Float64Array::from(vec![1.5, 2.0])),
            ],
        )
        .unwrap();
        let out = format_table(&schema, std::slice::from_ref(&b), ResultMode::Changelog).unwrap();
        assert_eq!(
            out,
            "+----+-----+\n| op |   v |\n+----+-----+\n| -U | 1.5 |\n| +U | 2.0 |\n+----+-----+\n"
        );
        // Outside changelog mode the column is an ordinary column.
        let out = format_table(&schema, &[b], ResultMode::Table).unwrap();
        assert!(out.contains("| $row_kind |"), "{out}");
    }

    #[test]
    fn control_characters_are_escaped() {
        let b = batch(&[Some(1)], &[Some("a\nb\tc")]);
        let out = format_table(&b.schema(), &[b], ResultMode::Table).unwrap();
        assert!(out.contains("| a\\nb\\tc |"), "{out}");
        assert_eq!(out.lines().count(), 5);
    }

    #[test]
    fn footers_and_status() {
        let t = Duration::from_millis(123);
        assert_eq!(format_footer(0, t), "Empty set (0.12 sec)");
        assert_eq!(format_footer(1, t), "1 row in set (0.12 sec)");
        assert_eq!(format_footer(1234, t), "1,234 rows in set (0.12 sec)");
        assert_eq!(
            format_status("Table created.", t),
            "[INFO] Table created. (0.12 sec)"
        );
        assert_eq!(format_error(&Error::invalid("bad")), "[ERROR] Error: bad");
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1234567), "1,234,567");
    }

    #[test]
    fn result_mode_parsing() {
        assert_eq!(ResultMode::parse(None).unwrap(), ResultMode::Table);
        assert_eq!(
            ResultMode::parse(Some("TABLEAU")).unwrap(),
            ResultMode::Tableau
        );
        assert_eq!(
            ResultMode::parse(Some("changelog")).unwrap(),
            ResultMode::Changelog
        );
        assert!(ResultMode::parse(Some("pager")).is_err());
    }

    #[test]
    fn csv_has_one_header_across_batches() {
        let b1 = batch(&[Some(1)], &[Some("a,b")]);
        let b2 = batch(&[None], &[Some("c")]);
        let mut p = CsvPrinter::new();
        let mut out = p.push(&b1).unwrap();
        out.push_str(&p.push(&b2).unwrap());
        out.push_str(&p.finish(&b1.schema()).unwrap());
        assert_eq!(out, "id,name\n1,\"a,b\"\n,c\n");
        let mut p = CsvPrinter::new();
        assert_eq!(p.finish(&b1.schema()).unwrap(), "id,name\n");
    }

    #[test]
    fn json_lines_with_nulls() {
        let b = batch(&[Some(1), None], &[Some("a"), Some("b")]);
        let out = JsonPrinter::new().push(&b).unwrap();
        assert_eq!(
            out,
            "{\"id\":1,\"name\":\"a\"}\n{\"id\":null,\"name\":\"b\"}\n"
        );
    }
}
