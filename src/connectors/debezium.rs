//! The `debezium-json` format of the `filesystem` connector: each line of a file is one change,
//! `{"before": {...} | null, "after": {...} | null, "op": "c" | "u" | "d" | "r"}`.
//!
//! Where it sits in the data path: on the write side, `file_sink`'s `FormatWriter::Debezium`
//! (batch `INSERT` and the streaming sink, the only filesystem sink that takes updates) turns each
//! change of a [`Changes`] batch into a line with [`Encoder`]; on the read side,
//! `changelog_scan` reads the lines back into changes with [`Decoder`] and materializes them
//! (batch) or streams them as a changelog (streaming).
//!
//! Writing follows Flink's `DebeziumJsonSerializationSchema`: `+I` and `+U` are written as
//! `{"before":null,"after":{...},"op":"c"}`, `-U` and `-D` as
//! `{"before":{...},"after":null,"op":"d"}` (an update is a delete and a create). Reading follows
//! `DebeziumJsonDeserializationSchema`: `c` and `r` are `+I` of `after`; `u` is `-U` of `before`
//! then `+U` of `after`; `d` is `-D` of `before`; other fields (`source`, `ts_ms`, ...) are
//! ignored and empty lines skipped.
//!
//! Values are written as Flink's JSON format writes them: numbers, strings, booleans, DECIMAL
//! as a plain number, DATE `2024-01-31`, TIME `12:30:00.5`, TIMESTAMP `2024-01-31 12:30:00.5`
//! (`'debezium-json.timestamp-format.standard' = 'SQL'`, the default) or
//! `2024-01-31T12:30:00.5` (`'ISO-8601'`), TIMESTAMP_LTZ the same followed by `Z`, BYTES as
//! base64, ROW as an object, ARRAY as an array, MAP (string keys only) as an object, and
//! floating-point NaN and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
//! Reading is more lenient: either timestamp standard is accepted whatever the option (and a
//! TIMESTAMP_LTZ without `Z` is UTC), numbers and booleans may be quoted, a missing field is NULL,
//! and a STRING column takes any JSON value (a non-string as its JSON text).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DecimalType, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, Schema, SchemaRef, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use serde_json::value::RawValue;

use super::json_values::{Built, RowObject, Slot, build, excerpt, slot};
use super::options::ConnectorOptions;
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::stream::changes::{Changes, RowKind};

/// The format's options (Flink's keys, prefixed with the format name).
pub(crate) const DEBEZIUM_OPTIONS: &[&str] = &[
    "debezium-json.ignore-parse-errors",
    "debezium-json.timestamp-format.standard",
    "debezium-json.schema-include",
];

/// How timestamps are written (`'debezium-json.timestamp-format.standard'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TimestampStandard {
    /// `2024-01-31 12:30:00.5` (Flink's default).
    #[default]
    Sql,
    /// `2024-01-31T12:30:00.5`.
    Iso8601,
}

/// The `debezium-json` options of a filesystem table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DebeziumConfig {
    /// `'debezium-json.ignore-parse-errors'`: bad lines are skipped instead of failing the read.
    pub ignore_parse_errors: bool,
    pub timestamp_standard: TimestampStandard,
}

impl DebeziumConfig {
    /// Parses the format's options (unknown keys are the caller's business).
    ///
    /// # Errors
    /// `Invalid` for malformed values; `NotSupported` for
    /// `'debezium-json.schema-include' = 'true'`.
    pub(crate) fn parse(o: &ConnectorOptions) -> Result<DebeziumConfig> {
        let ignore_parse_errors = o.bool("debezium-json.ignore-parse-errors", false)?;
        let timestamp_standard = match o.one_of(
            "debezium-json.timestamp-format.standard",
            &["SQL", "ISO-8601"],
        )? {
            Some("ISO-8601") => TimestampStandard::Iso8601,
            _ => TimestampStandard::Sql,
        };
        if o.bool("debezium-json.schema-include", false)? {
            return Err(Error::not_supported(format!(
                "'debezium-json.schema-include' = 'true' ({}) is not supported yet: lines must be \
                 bare change events ({{\"before\": ..., \"after\": ..., \"op\": ...}}), without the \
                 Kafka Connect `schema` / `payload` envelope",
                o.describe()
            )));
        }
        Ok(DebeziumConfig {
            ignore_parse_errors,
            timestamp_standard,
        })
    }
}

/// Checks that the format can write and read every column's type.
///
/// # Errors
/// `NotSupported` naming the first column whose type is not supported (INTERVAL, MAP with
/// non-string keys).
pub(crate) fn check_schema(o: &ConnectorOptions, schema: &Schema) -> Result<()> {
    for field in schema.fields() {
        if let Some(what) = unsupported(field.data_type()) {
            return Err(Error::not_supported(format!(
                "column `{}` of {} has a type the 'debezium-json' format does not support \
                 yet: {what}",
                field.name(),
                o.describe()
            )));
        }
    }
    Ok(())
}

/// What a `debezium-json` filesystem table cannot have (yet): partitions, a watched directory
/// (`watched`), column types the format cannot hold.
///
/// # Errors
/// `NotSupported` saying which.
pub(crate) fn check_table(o: &ConnectorOptions, def: &TableDef, watched: bool) -> Result<()> {
    if !def.partition_keys.is_empty() {
        return Err(Error::not_supported(format!(
            "a partitioned table with 'format' = 'debezium-json' ({}) is not supported yet",
            o.describe()
        )));
    }
    if watched {
        return Err(Error::not_supported(format!(
            "'source.monitor-interval' with 'format' = 'debezium-json' ({}) is not supported yet",
            o.describe()
        )));
    }
    check_schema(o, &super::physical_schema(def))
}

/// What is unsupported in a type, if anything.
fn unsupported(data_type: &DataType) -> Option<String> {
    match data_type {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(_, _)
        | DataType::Utf8
        | DataType::Binary
        | DataType::Date32
        | DataType::Time32(TimeUnit::Second | TimeUnit::Millisecond)
        | DataType::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond)
        | DataType::Timestamp(_, _) => None,
        DataType::List(element) => unsupported(element.data_type()),
        DataType::Struct(fields) => fields.iter().find_map(|f| unsupported(f.data_type())),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 && kv[0].data_type() == &DataType::Utf8 => {
                unsupported(kv[1].data_type())
            }
            _ => Some("MAP with keys that are not strings".to_string()),
        },
        other => Some(
            crate::types::SqlType::from_arrow(other)
                .map_or_else(|_| other.to_string(), |t| t.to_string()),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Turns changes into debezium-json lines.
pub(crate) struct Encoder {
    /// The columns' names, as JSON strings.
    names: Vec<String>,
    iso: bool,
}

impl Encoder {
    pub(crate) fn new(schema: &Schema, config: &DebeziumConfig) -> Encoder {
        Encoder {
            names: schema
                .fields()
                .iter()
                .map(|f| {
                    let mut s = String::new();
                    push_json_string(&mut s, f.name());
                    s
                })
                .collect(),
            iso: config.timestamp_standard == TimestampStandard::Iso8601,
        }
    }

    /// Appends one line per change to `out`, in row order.
    ///
    /// # Errors
    /// `NotSupported` for a column type the format cannot write; `External` for a date or time
    /// out of the representable range.
    pub(crate) fn encode(&self, changes: &Changes, out: &mut String) -> Result<()> {
        let columns = changes.data.columns();
        if columns.len() != self.names.len() {
            return Err(Error::internal(format!(
                "debezium-json writer got {} columns, expected {}",
                columns.len(),
                self.names.len()
            )));
        }
        for row in 0..changes.num_rows() {
            if changes.kind(row).is_addition() {
                out.push_str("{\"before\":null,\"after\":");
                self.write_row(columns, row, out)?;
                out.push_str(",\"op\":\"c\"}\n");
            } else {
                out.push_str("{\"before\":");
                self.write_row(columns, row, out)?;
                out.push_str(",\"after\":null,\"op\":\"d\"}\n");
            }
        }
        Ok(())
    }

    fn write_row(&self, columns: &[ArrayRef], row: usize, out: &mut String) -> Result<()> {
        out.push('{');
        for (i, (name, column)) in self.names.iter().zip(columns).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push(':');
            self.write_value(column.as_ref(), row, out)?;
        }
        out.push('}');
        Ok(())
    }

    fn write_value(&self, array: &dyn Array, row: usize, out: &mut String) -> Result<()> {
        if array.is_null(row) {
            out.push_str("null");
            return Ok(());
        }
        match array.data_type() {
            DataType::Null => out.push_str("null"),
            DataType::Boolean => out.push_str(if array.as_boolean().value(row) {
                "true"
            } else {
                "false"
            }),
            DataType::Int8 => push(out, array.as_primitive::<Int8Type>().value(row)),
            DataType::Int16 => push(out, array.as_primitive::<Int16Type>().value(row)),
            DataType::Int32 => push(out, array.as_primitive::<Int32Type>().value(row)),
            DataType::Int64 => push(out, array.as_primitive::<Int64Type>().value(row)),
            DataType::UInt8 => push(out, array.as_primitive::<UInt8Type>().value(row)),
            DataType::UInt16 => push(out, array.as_primitive::<UInt16Type>().value(row)),
            DataType::UInt32 => push(out, array.as_primitive::<UInt32Type>().value(row)),
            DataType::UInt64 => push(out, array.as_primitive::<UInt64Type>().value(row)),
            DataType::Float32 => {
                let v = array.as_primitive::<Float32Type>().value(row);
                if v.is_finite() {
                    push(out, v);
                } else {
                    push_non_finite(out, f64::from(v));
                }
            }
            DataType::Float64 => {
                let v = array.as_primitive::<Float64Type>().value(row);
                match serde_json::Number::from_f64(v) {
                    Some(n) => push(out, n),
                    None => push_non_finite(out, v),
                }
            }
            DataType::Decimal128(p, s) => out.push_str(&Decimal128Type::format_decimal(
                array.as_primitive::<Decimal128Type>().value(row),
                *p,
                *s,
            )),
            DataType::Utf8 => push_json_string(out, array.as_string::<i32>().value(row)),
            DataType::LargeUtf8 => push_json_string(out, array.as_string::<i64>().value(row)),
            DataType::Utf8View => push_json_string(out, array.as_string_view().value(row)),
            DataType::Binary => push_base64(out, array.as_binary::<i32>().value(row)),
            DataType::LargeBinary => push_base64(out, array.as_binary::<i64>().value(row)),
            DataType::Date32 => {
                let days = array.as_primitive::<Date32Type>().value(row);
                let date =
                    NaiveDate::from_epoch_days(days).ok_or_else(|| out_of_range("DATE", days))?;
                out.push('"');
                push(out, date.format("%Y-%m-%d"));
                out.push('"');
            }
            DataType::Time32(unit) => {
                let v = i64::from(match unit {
                    TimeUnit::Second => array.as_primitive::<Time32SecondType>().value(row),
                    _ => array.as_primitive::<Time32MillisecondType>().value(row),
                });
                self.write_time(out, v, *unit)?;
            }
            DataType::Time64(unit) => {
                let v = match unit {
                    TimeUnit::Microsecond => {
                        array.as_primitive::<Time64MicrosecondType>().value(row)
                    }
                    _ => array.as_primitive::<Time64NanosecondType>().value(row),
                };
                self.write_time(out, v, *unit)?;
            }
            DataType::Timestamp(unit, tz) => {
                let v = match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                    TimeUnit::Millisecond => {
                        array.as_primitive::<TimestampMillisecondType>().value(row)
                    }
                    TimeUnit::Microsecond => {
                        array.as_primitive::<TimestampMicrosecondType>().value(row)
                    }
                    TimeUnit::Nanosecond => {
                        array.as_primitive::<TimestampNanosecondType>().value(row)
                    }
                };
                let (secs, nanos) = split_units(v, *unit);
                let t = DateTime::from_timestamp(secs, nanos)
                    .ok_or_else(|| out_of_range("TIMESTAMP", v))?
                    .naive_utc();
                out.push('"');
                push(out, t.format("%Y-%m-%d"));
                out.push(if self.iso { 'T' } else { ' ' });
                push(out, t.format("%H:%M:%S"));
                push_fraction(out, t.nanosecond());
                if tz.is_some() {
                    out.push('Z');
                }
                out.push('"');
            }
            DataType::List(_) => self.write_list(array.as_list::<i32>().value(row), out)?,
            DataType::LargeList(_) => self.write_list(array.as_list::<i64>().value(row), out)?,
            DataType::Struct(fields) => {
                let s = array.as_struct();
                out.push('{');
                for (i, (field, column)) in fields.iter().zip(s.columns()).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_string(out, field.name());
                    out.push(':');
                    self.write_value(column.as_ref(), row, out)?;
                }
                out.push('}');
            }
            DataType::Map(_, _) => {
                let entries = array.as_map().value(row);
                let (keys, values) = (entries.column(0), entries.column(1));
                let keys = keys.as_string_opt::<i32>().ok_or_else(|| {
                    Error::not_supported("debezium-json writes MAPs with string keys only")
                })?;
                out.push('{');
                for i in 0..entries.len() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_string(out, keys.value(i));
                    out.push(':');
                    self.write_value(values.as_ref(), i, out)?;
                }
                out.push('}');
            }
            other => {
                return Err(Error::not_supported(format!(
                    "writing values of type {other} in the 'debezium-json' format"
                )));
            }
        }
        Ok(())
    }

    fn write_list(&self, values: ArrayRef, out: &mut String) -> Result<()> {
        out.push('[');
        for i in 0..values.len() {
            if i > 0 {
                out.push(',');
            }
            self.write_value(values.as_ref(), i, out)?;
        }
        out.push(']');
        Ok(())
    }

    /// A time of day, `v` in `unit`s since midnight: `"12:30:00.5"`.
    fn write_time(&self, out: &mut String, v: i64, unit: TimeUnit) -> Result<()> {
        let (secs, nanos) = split_units(v, unit);
        let t = u32::try_from(secs)
            .ok()
            .and_then(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, nanos))
            .ok_or_else(|| out_of_range("TIME", v))?;
        out.push('"');
        push(out, t.format("%H:%M:%S"));
        push_fraction(out, t.nanosecond());
        out.push('"');
        Ok(())
    }
}

/// Appends a value's `Display` (writing to a `String` cannot fail).
fn push(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

/// NaN and infinities, which JSON numbers cannot hold, as Jackson (Flink) writes them.
fn push_non_finite(out: &mut String, v: f64) {
    out.push_str(if v.is_nan() {
        "\"NaN\""
    } else if v > 0.0 {
        "\"Infinity\""
    } else {
        "\"-Infinity\""
    });
}

/// Nanoseconds as a fraction with as few digits as needed (none when zero), as Flink writes it.
fn push_fraction(out: &mut String, nanos: u32) {
    if nanos == 0 {
        return;
    }
    let digits = format!("{:09}", nanos.min(999_999_999));
    out.push('.');
    out.push_str(digits.trim_end_matches('0'));
}

fn push_base64(out: &mut String, bytes: &[u8]) {
    out.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
    out.push('"');
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => push(out, format_args!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `v` units as (seconds, nanoseconds within the second), flooring toward negative infinity.
fn split_units(v: i64, unit: TimeUnit) -> (i64, u32) {
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let nanos = v.rem_euclid(per_second) * (1_000_000_000 / per_second);
    (
        v.div_euclid(per_second),
        u32::try_from(nanos).unwrap_or_default(),
    )
}

fn out_of_range(what: &str, v: impl std::fmt::Display) -> Error {
    Error::external(format!(
        "{what} value {v} is out of the range the 'debezium-json' format can write"
    ))
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Turns debezium-json lines into changes of the table's data columns.
#[derive(Debug)]
pub(crate) struct Decoder {
    schema: SchemaRef,
    ignore_parse_errors: bool,
}

/// The fields of a line Weir reads; others are ignored.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    before: Option<&'a RawValue>,
    #[serde(borrow, default)]
    after: Option<&'a RawValue>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

/// The changes of one line.
fn parse_line(text: &str) -> std::result::Result<Vec<(RowKind, RowObject<'_>)>, String> {
    if !text.trim_start().starts_with('{') {
        return Err(format!(
            "not a JSON object (a change event): {}",
            excerpt(text.trim())
        ));
    }
    let envelope: Envelope<'_> =
        serde_json::from_str(text).map_err(|e| format!("malformed JSON ({e})"))?;
    let Some(op) = envelope.op else {
        if envelope.payload.is_some() {
            return Err(
                "the line has a \"payload\" but no \"op\": a message with a schema \
                        ('debezium-json.schema-include' = 'true'), which is not supported yet"
                    .to_string(),
            );
        }
        return Err("the line has no \"op\" field".to_string());
    };
    let row = |raw, field| row_object(raw, field, &op);
    match op.as_ref() {
        "c" | "r" => Ok(vec![(RowKind::Insert, row(envelope.after, "after")?)]),
        "u" => Ok(vec![
            (RowKind::UpdateBefore, row(envelope.before, "before")?),
            (RowKind::UpdateAfter, row(envelope.after, "after")?),
        ]),
        "d" => Ok(vec![(RowKind::Delete, row(envelope.before, "before")?)]),
        other => Err(format!(
            "unknown \"op\" value \"{other}\" (expected \"c\", \"r\", \"u\" or \"d\")"
        )),
    }
}

/// The row of a line's `before` or `after` field.
fn row_object<'a>(
    raw: Option<&'a RawValue>,
    field: &str,
    op: &str,
) -> std::result::Result<RowObject<'a>, String> {
    let raw = raw.ok_or_else(|| format!("\"{field}\" is null or missing for \"op\": \"{op}\""))?;
    serde_json::from_str::<RowObject<'a>>(raw.get())
        .map_err(|_| format!("\"{field}\" is not a JSON object: {}", excerpt(raw.get())))
}

impl Decoder {
    /// A decoder of rows of `schema` (the table's data columns).
    pub(crate) fn new(schema: SchemaRef, config: &DebeziumConfig) -> Decoder {
        Decoder {
            schema,
            ignore_parse_errors: config.ignore_parse_errors,
        }
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes `lines` (line number, text) of `file`, in order. A line that is not a change
    /// event, or whose values do not fit the columns, fails the read with its file and line
    /// number, or (`'debezium-json.ignore-parse-errors'`) is skipped whole.
    ///
    /// # Errors
    /// `External` for a bad line (see above).
    pub(crate) fn decode(&self, file: &Path, lines: &[(usize, String)]) -> Result<Changes> {
        let mut rows: Vec<(usize, RowKind, RowObject<'_>)> = Vec::with_capacity(lines.len());
        for (number, text) in lines {
            if text.trim().is_empty() {
                continue;
            }
            match parse_line(text) {
                Ok(changes) => rows.extend(changes.into_iter().map(|(k, r)| (*number, k, r))),
                Err(message) => self.bad_line(file, *number, &message)?,
            }
        }
        loop {
            match self.columns(&rows) {
                Ok(columns) => {
                    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
                    let data = RecordBatch::try_new_with_options(
                        Arc::clone(&self.schema),
                        columns,
                        &options,
                    )
                    .map_err(|e| {
                        Error::external(format!(
                            "cannot read '{}' (format 'debezium-json'): {e}",
                            file.display()
                        ))
                    })?;
                    return Changes::new(data, rows.iter().map(|r| r.1).collect());
                }
                Err(e) => {
                    let line = rows.get(e.index).map(|r| r.0).ok_or_else(|| {
                        Error::internal(format!("debezium-json: bad row index {}", e.index))
                    })?;
                    self.bad_line(file, line, &e.message)?;
                    rows.retain(|r| r.0 != line);
                }
            }
        }
    }

    /// A bad line: an error naming it, or (ignoring parse errors) nothing.
    ///
    /// # Errors
    /// `External` unless parse errors are ignored.
    pub(crate) fn bad_line(&self, file: &Path, line: usize, message: &str) -> Result<()> {
        if self.ignore_parse_errors {
            tracing::debug!("skipping line {line} of '{}': {message}", file.display());
            return Ok(());
        }
        Err(Error::external(format!(
            "cannot read line {line} of '{}' (format 'debezium-json'): {message}",
            file.display()
        )))
    }

    fn columns(&self, rows: &[(usize, RowKind, RowObject<'_>)]) -> Built<Vec<ArrayRef>> {
        self.schema
            .fields()
            .iter()
            .map(|field| {
                let slots: Vec<Slot<'_>> =
                    rows.iter().map(|r| slot(r.2.get(field.name()))).collect();
                build(field.name(), field, &slots)
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "debezium_tests.rs"]
mod tests;
