//! Hive's delimited text format (`LazySimpleSerDe` over `TextInputFormat`): the scan decodes a
//! text file's lines into Arrow batches with [`TextDecoder`], and the insert encodes batches into
//! lines with [`encode_batch`].
//!
//! Rules, as Hive's LazySimpleSerDe applies them:
//! - One row per line (`\n`, a trailing `\r` is dropped). Fields are split by `field.delim`
//!   (default `\u0001`); nested values use the next separators: array items, map entries and
//!   struct fields at nesting level n use separator n, a map's key/value separator is n+1. The
//!   separators are `field.delim`, `colelction.delim` (Hive's spelling; `collection.delim` is
//!   accepted too; default `\u0002`), `mapkey.delim` (default `\u0003`), then `\u0004`..`\u0008`.
//! - `serialization.null.format` (default `\N`) is NULL, at the top level and inside nested
//!   values.
//! - With `escape.delim` set, the escape character makes the next character literal (so a
//!   delimiter can appear in a string); with `serialization.escape.crlf=true`, `\r`/`\n` after
//!   the escape character are carriage return / line feed.
//! - Missing trailing fields are NULL; extra fields are ignored.
//! - **A value that does not parse as its column's type is NULL** (e.g. `abc` in an `int`
//!   column, `2024-13-01` in a `date` column, an out-of-range number), as Hive reads it; it is
//!   not an error.
//! - `binary` values are base64 (decoded when valid, else the raw bytes, as Hive does).
//! - Only UTF-8 files are read: another `serialization.encoding` is a not-supported error.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, ListArray, MapArray, RecordBatch,
    RecordBatchOptions, StringArray, StructArray, new_null_array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::cast_with_options;
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef,
    TimeUnit,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::adapt::safe;
use crate::error::{Error, Result};

/// The SerDe parameters of a text table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextOptions {
    /// Separators by nesting level: `[field, collection, mapkey, 4, 5, 6, 7, 8]`.
    pub separators: Vec<u8>,
    pub null_format: String,
    pub escape: Option<u8>,
    pub escape_crlf: bool,
}

impl TextOptions {
    /// The options from a table's SerDe parameters.
    ///
    /// # Errors
    /// `Invalid` for a delimiter that is not one byte; `NotSupported` for an encoding other than
    /// UTF-8.
    pub(crate) fn from_params(params: &std::collections::BTreeMap<String, String>) -> Result<Self> {
        let get = |k: &str| params.get(k).map(String::as_str);
        let delim = |keys: &[&str], default: u8| -> Result<u8> {
            for k in keys {
                if let Some(v) = get(k) {
                    return parse_delim(k, v);
                }
            }
            Ok(default)
        };
        // `serialization.format` is the field delimiter when `field.delim` is absent.
        let field = match get("field.delim") {
            Some(v) => parse_delim("field.delim", v)?,
            None => match get("serialization.format") {
                Some(v) => parse_delim("serialization.format", v)?,
                None => 1,
            },
        };
        let collection = delim(&["colelction.delim", "collection.delim"], 2)?;
        let mapkey = delim(&["mapkey.delim"], 3)?;
        let escape = match get("escape.delim") {
            Some(v) => Some(parse_delim("escape.delim", v)?),
            None => None,
        };
        if let Some(enc) = get("serialization.encoding") {
            let e = enc.to_ascii_lowercase().replace('-', "");
            if e != "utf8" {
                return Err(Error::not_supported(format!(
                    "text tables with serialization.encoding '{enc}' are not supported yet \
                     (only UTF-8)"
                )));
            }
        }
        Ok(Self {
            separators: vec![field, collection, mapkey, 4, 5, 6, 7, 8],
            null_format: get("serialization.null.format")
                .unwrap_or("\\N")
                .to_string(),
            escape,
            escape_crlf: get("serialization.escape.crlf")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }

    fn separator(&self, level: usize) -> Result<u8> {
        self.separators.get(level).copied().ok_or_else(|| {
            Error::not_supported(format!(
                "text tables nest at most {} levels deep",
                self.separators.len() - 1
            ))
        })
    }
}

/// A delimiter as Hive reads it (`LazySerDeParameters.getByte`): a decimal byte value first
/// (`1` is `\u0001`, `9` a tab, `-1` the byte 0xFF), else a single character. Unlike Hive, which
/// silently takes the first character of a longer value, a longer value is an error.
fn parse_delim(key: &str, value: &str) -> Result<u8> {
    if let Ok(n) = value.parse::<i8>() {
        return Ok(n.to_ne_bytes()[0]);
    }
    let bytes = value.as_bytes();
    if bytes.len() == 1 {
        return Ok(bytes[0]);
    }
    Err(Error::invalid(format!(
        "SerDe parameter '{key}' = '{}' is not a single-byte delimiter",
        value.escape_debug()
    )))
}

/// Splits `s` on `sep`, skipping separators preceded by the escape character.
fn split(s: &[u8], sep: u8, escape: Option<u8>) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        if Some(s[i]) == escape {
            i += 2;
            continue;
        }
        if s[i] == sep {
            out.push(&s[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push(&s[start.min(s.len())..]);
    out
}

/// Splits `s` at the first unescaped `sep` (a map entry's key and value).
fn split_once(s: &[u8], sep: u8, escape: Option<u8>) -> (&[u8], Option<&[u8]>) {
    let mut i = 0;
    while i < s.len() {
        if Some(s[i]) == escape {
            i += 2;
            continue;
        }
        if s[i] == sep {
            return (&s[..i], Some(&s[i + 1..]));
        }
        i += 1;
    }
    (s, None)
}

/// Decodes lines of a text file into batches of the table's data columns.
pub(crate) struct TextDecoder {
    options: Arc<TextOptions>,
    /// The columns read, in output order, with their positions among the line's fields.
    schema: SchemaRef,
    positions: Vec<usize>,
}

impl TextDecoder {
    /// `schema`: the columns to produce; `positions[i]`: which field of a line holds column i.
    pub(crate) fn new(options: Arc<TextOptions>, schema: SchemaRef, positions: Vec<usize>) -> Self {
        Self {
            options,
            schema,
            positions,
        }
    }

    /// The batch of `lines` (each without its line terminator).
    pub(crate) fn decode(&self, lines: &[&[u8]]) -> Result<RecordBatch> {
        let o = &self.options;
        let fields: Vec<Vec<&[u8]>> = lines
            .iter()
            .map(|line| split(line, o.separators[0], o.escape))
            .collect();
        let columns = self
            .schema
            .fields()
            .iter()
            .zip(&self.positions)
            .map(|(field, &pos)| {
                let values: Vec<Option<&[u8]>> =
                    fields.iter().map(|f| f.get(pos).copied()).collect();
                self.column(&values, field.data_type(), 1)
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(lines.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }

    fn is_null(&self, v: Option<&[u8]>) -> bool {
        v.is_none_or(|v| v == self.options.null_format.as_bytes())
    }

    /// The array of `values` (raw, still escaped) of type `dt` at nesting `level`.
    fn column(&self, values: &[Option<&[u8]>], dt: &DataType, level: usize) -> Result<ArrayRef> {
        let o = &self.options;
        let nulls =
            || NullBuffer::from(values.iter().map(|v| !self.is_null(*v)).collect::<Vec<_>>());
        match dt {
            DataType::List(item) => {
                let sep = o.separator(level)?;
                let mut items = Vec::new();
                let mut lengths = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        Some(v) if !self.is_null(Some(v)) => {
                            let parts = if v.is_empty() {
                                Vec::new()
                            } else {
                                split(v, sep, o.escape)
                            };
                            lengths.push(parts.len());
                            items.extend(parts.into_iter().map(Some));
                        }
                        _ => lengths.push(0),
                    }
                }
                let items = self.column(&items, item.data_type(), level + 1)?;
                Ok(Arc::new(ListArray::try_new(
                    nullable(item, &items),
                    OffsetBuffer::from_lengths(lengths),
                    items,
                    Some(nulls()),
                )?))
            }
            DataType::Map(entries, ordered) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(Error::internal("map entries are not a struct"));
                };
                let (sep, kv_sep) = (o.separator(level)?, o.separator(level + 1)?);
                let (mut keys, mut vals, mut lengths) = (Vec::new(), Vec::new(), Vec::new());
                for v in values {
                    match v {
                        Some(v) if !self.is_null(Some(v)) && !v.is_empty() => {
                            let parts = split(v, sep, o.escape);
                            lengths.push(parts.len());
                            for p in parts {
                                let (k, val) = split_once(p, kv_sep, o.escape);
                                keys.push(Some(k));
                                vals.push(val);
                            }
                        }
                        _ => lengths.push(0),
                    }
                }
                let key_array = self.column(&keys, kv[0].data_type(), level + 2)?;
                let value_array = self.column(&vals, kv[1].data_type(), level + 2)?;
                let entry_nulls = key_array.nulls().cloned();
                // Hive drops map entries whose key is NULL; Arrow maps cannot hold them either.
                let (key_array, value_array, lengths) = match entry_nulls {
                    Some(n) if n.null_count() > 0 => {
                        drop_null_keys(&key_array, &value_array, &lengths, &n)?
                    }
                    _ => (key_array, value_array, lengths),
                };
                let entries_array =
                    StructArray::try_new(kv.clone(), vec![key_array, value_array], None)?;
                Ok(Arc::new(MapArray::try_new(
                    Arc::clone(entries),
                    OffsetBuffer::from_lengths(lengths),
                    entries_array,
                    Some(nulls()),
                    *ordered,
                )?))
            }
            DataType::Struct(fields) => {
                let sep = o.separator(level)?;
                let split_values: Vec<Vec<&[u8]>> = values
                    .iter()
                    .map(|v| match v {
                        Some(v) if !self.is_null(Some(v)) => split(v, sep, o.escape),
                        _ => Vec::new(),
                    })
                    .collect();
                let columns = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let vals: Vec<Option<&[u8]>> =
                            split_values.iter().map(|p| p.get(i).copied()).collect();
                        self.column(&vals, f.data_type(), level + 1)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let fields = fields
                    .iter()
                    .zip(&columns)
                    .map(|(f, c)| nullable(f, c))
                    .collect::<Vec<_>>();
                Ok(Arc::new(StructArray::try_new(
                    fields.into(),
                    columns,
                    Some(nulls()),
                )?))
            }
            _ => self.leaf(values, dt),
        }
    }

    /// A primitive column: unescaped text, then parsed (bad values become NULL).
    fn leaf(&self, values: &[Option<&[u8]>], dt: &DataType) -> Result<ArrayRef> {
        let texts: Vec<Option<String>> = values
            .iter()
            .map(|v| {
                if self.is_null(*v) {
                    None
                } else {
                    v.map(|v| self.unescape(v))
                }
            })
            .collect();
        match dt {
            DataType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(texts.len());
                for t in &texts {
                    b.append_option(t.as_deref().and_then(|t| {
                        if t.eq_ignore_ascii_case("true") {
                            Some(true)
                        } else if t.eq_ignore_ascii_case("false") {
                            Some(false)
                        } else {
                            None
                        }
                    }));
                }
                Ok(Arc::new(b.finish()))
            }
            DataType::Binary => {
                let mut b = BinaryBuilder::new();
                for t in &texts {
                    match t {
                        Some(t) => match BASE64.decode(t.as_bytes()) {
                            Ok(bytes) => b.append_value(bytes),
                            Err(_) => b.append_value(t.as_bytes()),
                        },
                        None => b.append_null(),
                    }
                }
                Ok(Arc::new(b.finish()))
            }
            DataType::Utf8 => Ok(Arc::new(StringArray::from(texts))),
            DataType::Null => Ok(new_null_array(dt, texts.len())),
            _ => {
                // Numbers, decimals, dates and timestamps: Arrow's parsers, with blanks around
                // numbers trimmed as Hive's LazyInteger/LazyDouble do not (they give NULL).
                let strings: ArrayRef = Arc::new(StringArray::from(texts));
                Ok(cast_with_options(&strings, dt, &safe())?)
            }
        }
    }

    /// Removes the escape characters of a leaf value (lossy UTF-8: invalid bytes become U+FFFD).
    fn unescape(&self, v: &[u8]) -> String {
        let Some(esc) = self.options.escape else {
            return String::from_utf8_lossy(v).into_owned();
        };
        if !v.contains(&esc) {
            return String::from_utf8_lossy(v).into_owned();
        }
        let mut out = Vec::with_capacity(v.len());
        let mut i = 0;
        while i < v.len() {
            if v[i] == esc && i + 1 < v.len() {
                let c = v[i + 1];
                out.push(match c {
                    b'r' if self.options.escape_crlf => b'\r',
                    b'n' if self.options.escape_crlf => b'\n',
                    _ => c,
                });
                i += 2;
            } else {
                out.push(v[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Drops map entries with NULL keys (rebuilding the per-map lengths).
fn drop_null_keys(
    keys: &ArrayRef,
    values: &ArrayRef,
    lengths: &[usize],
    valid: &NullBuffer,
) -> Result<(ArrayRef, ArrayRef, Vec<usize>)> {
    let mut keep = Vec::new();
    let mut new_lengths = Vec::with_capacity(lengths.len());
    let mut i = 0usize;
    for &len in lengths {
        let mut n = 0;
        for j in i..i + len {
            if valid.is_valid(j) {
                keep.push(u32::try_from(j).map_err(|_| Error::internal("map too large"))?);
                n += 1;
            }
        }
        i += len;
        new_lengths.push(n);
    }
    let idx = datafusion::arrow::array::UInt32Array::from(keep);
    Ok((
        datafusion::arrow::compute::take(keys, &idx, None)?,
        datafusion::arrow::compute::take(values, &idx, None)?,
        new_lengths,
    ))
}

fn nullable(
    field: &datafusion::arrow::datatypes::FieldRef,
    values: &ArrayRef,
) -> datafusion::arrow::datatypes::FieldRef {
    if field.is_nullable() || values.null_count() == 0 {
        Arc::clone(field)
    } else {
        Arc::new(datafusion::arrow::datatypes::Field::clone(field).with_nullable(true))
    }
}

/// Appends the lines of `batch` (all of a table's data columns, in order) to `out`.
///
/// # Errors
/// `NotSupported` for column types text tables cannot hold.
pub(crate) fn encode_batch(batch: &RecordBatch, o: &TextOptions, out: &mut Vec<u8>) -> Result<()> {
    for row in 0..batch.num_rows() {
        for (i, column) in batch.columns().iter().enumerate() {
            if i > 0 {
                out.push(o.separators[0]);
            }
            encode_value(column, row, 1, o, out)?;
        }
        out.push(b'\n');
    }
    Ok(())
}

fn encode_value(
    a: &ArrayRef,
    row: usize,
    level: usize,
    o: &TextOptions,
    out: &mut Vec<u8>,
) -> Result<()> {
    if a.is_null(row) {
        out.extend_from_slice(o.null_format.as_bytes());
        return Ok(());
    }
    let mut text = String::new();
    match a.data_type() {
        DataType::List(_) => {
            let sep = o.separator(level)?;
            let items = a.as_list::<i32>().value(row);
            for j in 0..items.len() {
                if j > 0 {
                    out.push(sep);
                }
                encode_value(&items, j, level + 1, o, out)?;
            }
            return Ok(());
        }
        DataType::Map(_, _) => {
            let (sep, kv_sep) = (o.separator(level)?, o.separator(level + 1)?);
            let entries = a.as_map().value(row);
            for j in 0..entries.len() {
                if j > 0 {
                    out.push(sep);
                }
                encode_value(entries.column(0), j, level + 2, o, out)?;
                out.push(kv_sep);
                encode_value(entries.column(1), j, level + 2, o, out)?;
            }
            return Ok(());
        }
        DataType::Struct(_) => {
            let sep = o.separator(level)?;
            let st = a.as_struct();
            for (j, c) in st.columns().iter().enumerate() {
                if j > 0 {
                    out.push(sep);
                }
                encode_value(c, row, level + 1, o, out)?;
            }
            return Ok(());
        }
        DataType::Boolean => text.push_str(if a.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Int8 => write_num(&mut text, a.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => write_num(&mut text, a.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => write_num(&mut text, a.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => write_num(&mut text, a.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => write_float(
            &mut text,
            f64::from(a.as_primitive::<Float32Type>().value(row)),
        ),
        DataType::Float64 => write_float(&mut text, a.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, _) | DataType::Date32 => {
            let f = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())?;
            let _ = write!(text, "{}", f.value(row));
        }
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => Some(
                    a.as_primitive::<datafusion::arrow::datatypes::TimestampSecondType>()
                        .value(row)
                        .saturating_mul(1_000_000),
                ),
                TimeUnit::Millisecond => Some(
                    a.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>()
                        .value(row)
                        .saturating_mul(1000),
                ),
                TimeUnit::Microsecond => Some(
                    a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                        .value(row),
                ),
                TimeUnit::Nanosecond => None,
            };
            let nanos_total = match micros {
                Some(m) => i128::from(m) * 1000,
                None => i128::from(
                    a.as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
                        .value(row),
                ),
            };
            text.push_str(&hive_timestamp(nanos_total)?);
        }
        DataType::Utf8 => escape_into(a.as_string::<i32>().value(row), level, o, &mut text)?,
        DataType::LargeUtf8 => escape_into(a.as_string::<i64>().value(row), level, o, &mut text)?,
        DataType::Utf8View => escape_into(a.as_string_view().value(row), level, o, &mut text)?,
        DataType::Binary => text.push_str(&BASE64.encode(a.as_binary::<i32>().value(row))),
        other => {
            return Err(Error::not_supported(format!(
                "writing {other} values to a Hive text table is not supported yet"
            )));
        }
    }
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn write_num(text: &mut String, v: impl std::fmt::Display) {
    let _ = write!(text, "{v}");
}

/// A double the way Java's `Double.toString` spells the common cases (`-78094.0`, `NaN`,
/// `Infinity`), which Hive and Spark parse back.
fn write_float(text: &mut String, v: f64) {
    if v.is_nan() {
        text.push_str("NaN");
    } else if v.is_infinite() {
        text.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(text, "{v:.1}");
    } else {
        let _ = write!(text, "{v}");
    }
}

/// `yyyy-MM-dd HH:mm:ss[.f...]` with the fraction's trailing zeros trimmed, as Hive writes it.
fn hive_timestamp(nanos: i128) -> Result<String> {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let secs = i64::try_from(secs).map_err(|_| Error::invalid("timestamp out of range"))?;
    let frac = u32::try_from(frac).map_err(|_| Error::internal("fraction out of range"))?;
    let dt = chrono::DateTime::from_timestamp(secs, frac)
        .ok_or_else(|| Error::invalid(format!("timestamp {nanos} ns is out of range")))?;
    let mut s = dt.format("%Y-%m-%d %H:%M:%S").to_string();
    if frac > 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    Ok(s)
}

/// A string value at nesting `level` with the separators that would split it, the escape
/// character and line breaks escaped.
///
/// # Errors
/// `Invalid` when the value holds such a character and the table has no `escape.delim` (or, for
/// line breaks, no `serialization.escape.crlf=true`): written raw, it would read back as other
/// rows or fields.
fn escape_into(s: &str, level: usize, o: &TextOptions, out: &mut String) -> Result<()> {
    let splitting = &o.separators[..level.min(o.separators.len())];
    for c in s.chars() {
        let byte = u8::try_from(c).ok();
        let special = byte.is_some_and(|b| Some(b) == o.escape || splitting.contains(&b));
        let line_break = c == '\n' || c == '\r';
        match o.escape {
            Some(esc) if line_break && o.escape_crlf => {
                out.push(char::from(esc));
                out.push(if c == '\n' { 'n' } else { 'r' });
            }
            Some(esc) if special && !line_break => {
                out.push(char::from(esc));
                out.push(c);
            }
            _ if special || line_break => {
                return Err(Error::invalid(format!(
                    "the string value '{}' holds a delimiter or line break, which this text \
                     table cannot store (set the SerDe parameters escape.delim and \
                     serialization.escape.crlf=true to store them escaped)",
                    s.escape_debug()
                )));
            }
            _ => out.push(c),
        }
    }
    Ok(())
}
