//! Raw JSON values to Arrow arrays, column by column: the typed half of reading the
//! `debezium-json` format. Where it sits in the data path: `debezium::Decoder` splits each line
//! into its change kind and row objects (field name to raw JSON text) and hands the values of
//! each column here ([`build`]); `changelog_scan` gets the resulting batches.
//!
//! Values are parsed from their raw text (`serde_json::value::RawValue`), so a DECIMAL keeps
//! every digit. What is accepted is described in `debezium`'s module documentation. A value
//! that does not fit reports the index of its row (a list element or map entry: its row's), so
//! the decoder can name the line.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use datafusion::arrow::array::{
    ArrayRef, ArrowPrimitiveType, BinaryBuilder, BooleanBuilder, ListArray, MapArray, NullArray,
    PrimitiveBuilder, StringBuilder, StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::kernels::cast_utils::parse_decimal;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, FieldRef, Fields, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use serde_json::value::RawValue;

/// A JSON object: field name to raw JSON value.
pub(super) type RowObject<'a> = HashMap<String, &'a RawValue>;

/// A value failed to convert: the index of its row among those being built, and why.
pub(super) struct BuildError {
    pub index: usize,
    pub message: String,
}

pub(super) type Built<T = ArrayRef> = std::result::Result<T, BuildError>;

/// One value to convert.
#[derive(Clone, Copy)]
pub(super) enum Slot<'a> {
    /// JSON null or a missing field.
    Null,
    /// Under a NULL row or map: NULL whatever the field's nullability.
    Masked,
    Value(&'a RawValue),
}

pub(super) fn slot<'a>(raw: Option<&&'a RawValue>) -> Slot<'a> {
    match raw {
        Some(v) if v.get().trim() != "null" => Slot::Value(v),
        _ => Slot::Null,
    }
}

fn fail(index: usize, path: &str, message: impl std::fmt::Display) -> BuildError {
    BuildError {
        index,
        message: format!("column `{path}`: {message}"),
    }
}

/// A NULL for a NOT NULL field is an error.
fn check_null(field: &Field, index: usize, path: &str) -> Built<()> {
    if field.is_nullable() {
        Ok(())
    } else {
        Err(fail(index, path, "NULL for a NOT NULL column"))
    }
}

/// The start of a raw value, for messages.
pub(super) fn excerpt(raw: &str) -> String {
    let mut s: String = raw.chars().take(60).collect();
    if s.len() < raw.len() {
        s.push_str("...");
    }
    s
}

/// The array of `field` from one value per row; `path` names the column in messages.
pub(super) fn build(path: &str, field: &Field, slots: &[Slot<'_>]) -> Built {
    match field.data_type() {
        DataType::Null => Ok(Arc::new(NullArray::new(slots.len()))),
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(slots.len());
            for (i, s) in slots.iter().enumerate() {
                match s {
                    Slot::Value(v) => {
                        b.append_value(parse_bool(v.get()).map_err(|m| fail(i, path, m))?)
                    }
                    Slot::Null => {
                        check_null(field, i, path)?;
                        b.append_null();
                    }
                    Slot::Masked => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        DataType::Int8 => primitive::<Int8Type>(path, field, slots, int),
        DataType::Int16 => primitive::<Int16Type>(path, field, slots, int),
        DataType::Int32 => primitive::<Int32Type>(path, field, slots, int),
        DataType::Int64 => primitive::<Int64Type>(path, field, slots, int),
        // The nearest f32 of the number.
        DataType::Float32 => {
            primitive::<Float32Type>(path, field, slots, |v| float(v).map(|f| f as f32))
        }
        DataType::Float64 => primitive::<Float64Type>(path, field, slots, float),
        DataType::Decimal128(p, s) => primitive::<Decimal128Type>(path, field, slots, |v| {
            let text = scalar_text(v)?;
            parse_decimal::<Decimal128Type>(text.trim(), *p, *s)
                .map_err(|_| format!("expected a DECIMAL({p}, {s}), got {}", excerpt(v)))
        }),
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(slots.len(), 0);
            for (i, s) in slots.iter().enumerate() {
                match s {
                    Slot::Value(v) => {
                        let text = if v.get().starts_with('"') {
                            json_string(v.get()).map_err(|m| fail(i, path, m))?
                        } else {
                            Cow::Borrowed(v.get())
                        };
                        b.append_value(text);
                    }
                    Slot::Null => {
                        check_null(field, i, path)?;
                        b.append_null();
                    }
                    Slot::Masked => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::with_capacity(slots.len(), 0);
            for (i, s) in slots.iter().enumerate() {
                match s {
                    Slot::Value(v) => {
                        let text = json_string(v.get()).map_err(|m| fail(i, path, m))?;
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(text.as_bytes())
                            .map_err(|e| fail(i, path, format!("expected base64 bytes ({e})")))?;
                        b.append_value(bytes);
                    }
                    Slot::Null => {
                        check_null(field, i, path)?;
                        b.append_null();
                    }
                    Slot::Masked => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        DataType::Date32 => primitive::<Date32Type>(path, field, slots, |v| {
            let text = json_string(v)?;
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map(|d| d.to_epoch_days())
                .ok()
                .ok_or_else(|| {
                    format!("expected a date such as \"2024-01-31\", got {}", excerpt(v))
                })
        }),
        DataType::Time32(TimeUnit::Second) => {
            primitive::<Time32SecondType>(path, field, slots, |v| time(v, TimeUnit::Second))
        }
        DataType::Time32(_) => primitive::<Time32MillisecondType>(path, field, slots, |v| {
            time(v, TimeUnit::Millisecond)
        }),
        DataType::Time64(TimeUnit::Microsecond) => {
            primitive::<Time64MicrosecondType>(path, field, slots, |v| {
                time(v, TimeUnit::Microsecond)
            })
        }
        DataType::Time64(_) => {
            primitive::<Time64NanosecondType>(path, field, slots, |v| time(v, TimeUnit::Nanosecond))
        }
        DataType::Timestamp(unit, _) => {
            let unit = *unit;
            let parse = move |v: &str| timestamp(v, unit);
            match unit {
                TimeUnit::Second => primitive::<TimestampSecondType>(path, field, slots, parse),
                TimeUnit::Millisecond => {
                    primitive::<TimestampMillisecondType>(path, field, slots, parse)
                }
                TimeUnit::Microsecond => {
                    primitive::<TimestampMicrosecondType>(path, field, slots, parse)
                }
                TimeUnit::Nanosecond => {
                    primitive::<TimestampNanosecondType>(path, field, slots, parse)
                }
            }
        }
        DataType::Struct(fields) => build_struct(path, field, fields, slots),
        DataType::List(element) => build_list(path, field, element, slots),
        DataType::Map(entries, sorted) => build_map(path, field, entries, *sorted, slots),
        other => Err(fail(0, path, format!("type {other} is not supported"))),
    }
}

/// A primitive array, each value parsed from its raw JSON text by `parse`.
fn primitive<T: ArrowPrimitiveType>(
    path: &str,
    field: &Field,
    slots: &[Slot<'_>],
    parse: impl Fn(&str) -> std::result::Result<T::Native, String>,
) -> Built {
    let mut b = PrimitiveBuilder::<T>::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        match s {
            Slot::Value(v) => b.append_value(parse(v.get()).map_err(|m| fail(i, path, m))?),
            Slot::Null => {
                check_null(field, i, path)?;
                b.append_null();
            }
            Slot::Masked => b.append_null(),
        }
    }
    // Decimal precision and scale, the time zone of a timestamp: T is the type's own.
    Ok(Arc::new(
        b.finish().with_data_type(field.data_type().clone()),
    ))
}

fn build_struct(path: &str, field: &Field, fields: &Fields, slots: &[Slot<'_>]) -> Built {
    let mut objects: Vec<Option<RowObject<'_>>> = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        objects.push(match s {
            Slot::Value(v) => {
                Some(serde_json::from_str::<RowObject<'_>>(v.get()).map_err(|_| {
                    fail(
                        i,
                        path,
                        format!("expected a JSON object, got {}", excerpt(v.get())),
                    )
                })?)
            }
            Slot::Null => {
                check_null(field, i, path)?;
                None
            }
            Slot::Masked => None,
        });
    }
    let nulls = nulls(objects.iter().map(Option::is_some));
    if fields.is_empty() {
        return Ok(Arc::new(StructArray::new_empty_fields(slots.len(), nulls)));
    }
    let mut children = Vec::with_capacity(fields.len());
    for child in fields {
        let child_slots: Vec<Slot<'_>> = objects
            .iter()
            .map(|o| match o {
                Some(object) => slot(object.get(child.name())),
                None => Slot::Masked,
            })
            .collect();
        children.push(build(
            &format!("{path}.{}", child.name()),
            child,
            &child_slots,
        )?);
    }
    StructArray::try_new(fields.clone(), children, nulls)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| fail(0, path, e))
}

fn build_list(path: &str, field: &Field, element: &FieldRef, slots: &[Slot<'_>]) -> Built {
    let mut offsets: Vec<i32> = Vec::with_capacity(slots.len() + 1);
    offsets.push(0);
    let mut elements: Vec<Slot<'_>> = Vec::new();
    // The row of each element.
    let mut owners: Vec<usize> = Vec::new();
    let mut valid = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        match s {
            Slot::Value(v) => {
                let items: Vec<&RawValue> = serde_json::from_str(v.get()).map_err(|_| {
                    fail(
                        i,
                        path,
                        format!("expected a JSON array, got {}", excerpt(v.get())),
                    )
                })?;
                for item in items {
                    elements.push(slot(Some(&item)));
                    owners.push(i);
                }
                valid.push(true);
            }
            Slot::Null => {
                check_null(field, i, path)?;
                valid.push(false);
            }
            Slot::Masked => valid.push(false),
        }
        offsets.push(
            i32::try_from(elements.len()).map_err(|_| fail(i, path, "too many array elements"))?,
        );
    }
    let values = build(&format!("{path}[]"), element, &elements).map_err(|e| BuildError {
        index: owners.get(e.index).copied().unwrap_or(0),
        message: e.message,
    })?;
    ListArray::try_new(
        Arc::clone(element),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        values,
        nulls(valid.into_iter()),
    )
    .map(|a| Arc::new(a) as ArrayRef)
    .map_err(|e| fail(0, path, e))
}

fn build_map(
    path: &str,
    field: &Field,
    entries: &FieldRef,
    sorted: bool,
    slots: &[Slot<'_>],
) -> Built {
    let DataType::Struct(kv) = entries.data_type() else {
        return Err(fail(0, path, "a MAP without key and value fields"));
    };
    let (Some(key_field), Some(value_field)) = (kv.first(), kv.get(1)) else {
        return Err(fail(0, path, "a MAP without key and value fields"));
    };
    if key_field.data_type() != &DataType::Utf8 {
        return Err(fail(0, path, "MAP keys must be strings"));
    }
    let mut offsets: Vec<i32> = Vec::with_capacity(slots.len() + 1);
    offsets.push(0);
    let mut keys = StringBuilder::new();
    let mut values: Vec<Slot<'_>> = Vec::new();
    let mut owners: Vec<usize> = Vec::new();
    let mut valid = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        match s {
            Slot::Value(v) => {
                let object: BTreeMap<String, &RawValue> =
                    serde_json::from_str(v.get()).map_err(|_| {
                        fail(
                            i,
                            path,
                            format!("expected a JSON object, got {}", excerpt(v.get())),
                        )
                    })?;
                for (key, value) in object {
                    keys.append_value(key);
                    values.push(slot(Some(&value)));
                    owners.push(i);
                }
                valid.push(true);
            }
            Slot::Null => {
                check_null(field, i, path)?;
                valid.push(false);
            }
            Slot::Masked => valid.push(false),
        }
        offsets
            .push(i32::try_from(values.len()).map_err(|_| fail(i, path, "too many map entries"))?);
    }
    let value_array =
        build(&format!("{path}[]"), value_field, &values).map_err(|e| BuildError {
            index: owners.get(e.index).copied().unwrap_or(0),
            message: e.message,
        })?;
    let entry_array = StructArray::try_new(
        kv.clone(),
        vec![Arc::new(keys.finish()) as ArrayRef, value_array],
        None,
    )
    .map_err(|e| fail(0, path, e))?;
    MapArray::try_new(
        Arc::clone(entries),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        entry_array,
        nulls(valid.into_iter()),
        sorted,
    )
    .map(|a| Arc::new(a) as ArrayRef)
    .map_err(|e| fail(0, path, e))
}

/// The validity of values, `None` when all are valid.
fn nulls(valid: impl Iterator<Item = bool>) -> Option<NullBuffer> {
    let valid: Vec<bool> = valid.collect();
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

/// The content of a JSON string literal.
fn json_string(raw: &str) -> std::result::Result<Cow<'_, str>, String> {
    if let Ok(s) = serde_json::from_str::<&str>(raw) {
        return Ok(Cow::Borrowed(s));
    }
    serde_json::from_str::<String>(raw)
        .map(Cow::Owned)
        .map_err(|_| format!("expected a JSON string, got {}", excerpt(raw)))
}

/// A scalar's text: a string's content, or a number's or boolean's literal.
fn scalar_text(raw: &str) -> std::result::Result<Cow<'_, str>, String> {
    if raw.starts_with('"') {
        json_string(raw)
    } else if raw.starts_with('{') || raw.starts_with('[') {
        Err(format!("expected a scalar, got {}", excerpt(raw)))
    } else {
        Ok(Cow::Borrowed(raw))
    }
}

fn parse_bool(raw: &str) -> std::result::Result<bool, String> {
    let text = scalar_text(raw)?;
    match text.trim() {
        t if t.eq_ignore_ascii_case("true") => Ok(true),
        t if t.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(format!("expected true or false, got {}", excerpt(raw))),
    }
}

/// An integer of type `T`, range-checked.
fn int<T: TryFrom<i64>>(raw: &str) -> std::result::Result<T, String> {
    let text = scalar_text(raw)?;
    let v: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected an integer, got {}", excerpt(raw)))?;
    T::try_from(v).map_err(|_| format!("integer {v} is out of the column type's range"))
}

fn float(raw: &str) -> std::result::Result<f64, String> {
    let text = scalar_text(raw)?;
    match text.trim() {
        "NaN" => Ok(f64::NAN),
        "Infinity" | "+Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        t => t
            .parse()
            .map_err(|_| format!("expected a number, got {}", excerpt(raw))),
    }
}

/// A time of day as `unit`s since midnight.
fn time<T: TryFrom<i64>>(raw: &str, unit: TimeUnit) -> std::result::Result<T, String> {
    let bad = || format!("expected a time such as \"12:30:00\", got {}", excerpt(raw));
    let text = json_string(raw).map_err(|_| bad())?;
    let t = NaiveTime::parse_from_str(text.trim(), "%H:%M:%S%.f").map_err(|_| bad())?;
    let v = to_units(
        i64::from(t.num_seconds_from_midnight()),
        t.nanosecond(),
        unit,
    )
    .ok_or_else(bad)?;
    T::try_from(v).map_err(|_| bad())
}

/// A timestamp as `unit`s since the epoch (UTC): `2024-01-31 12:30:00[.f]` or
/// `2024-01-31T12:30:00[.f]`, optionally followed by `Z`, or with a UTC offset (RFC 3339).
fn timestamp(raw: &str, unit: TimeUnit) -> std::result::Result<i64, String> {
    let bad = || {
        format!(
            "expected a timestamp such as \"2024-01-31 12:30:00\", got {}",
            excerpt(raw)
        )
    };
    let text = json_string(raw).map_err(|_| bad())?;
    let text = text.trim();
    let body = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix('z'))
        .unwrap_or(text);
    let utc = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(body, f).ok())
        .map(|t| t.and_utc())
        .or_else(|| DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc()))
        .ok_or_else(bad)?;
    to_units(utc.timestamp(), utc.timestamp_subsec_nanos(), unit)
        .ok_or_else(|| format!("timestamp {} is out of range", excerpt(raw)))
}

/// Seconds and nanoseconds as `unit`s, `None` on overflow.
fn to_units(secs: i64, nanos: u32, unit: TimeUnit) -> Option<i64> {
    let nanos = i64::from(nanos);
    match unit {
        TimeUnit::Second => Some(secs),
        TimeUnit::Millisecond => secs.checked_mul(1_000)?.checked_add(nanos / 1_000_000),
        TimeUnit::Microsecond => secs.checked_mul(1_000_000)?.checked_add(nanos / 1_000),
        TimeUnit::Nanosecond => secs.checked_mul(1_000_000_000)?.checked_add(nanos),
    }
}
