//! Fitting the arrays a Hive data file decodes to onto the table's Arrow types, between the
//! format readers (`scan`, `text`) and the rows the scan hands to DataFusion.
//!
//! Files written by other engines differ from the table schema in names and encodings but not in
//! meaning: Hive's Parquet writer names list items `array_element` (inside a `bag` group) and map
//! entries `key_value`, stores timestamps as INT96 (read as nanoseconds), and field names may
//! differ in case (Hive is case-insensitive). [`adapt_array`] rebuilds nested arrays with the
//! table's field names, matches struct fields by lower-cased name (a field missing from the file
//! is NULL, as in Hive after `ALTER TABLE ... ADD COLUMNS`), and casts leaves to the table's types.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, LargeListArray, ListArray, MapArray, RecordBatch, RecordBatchOptions,
    StructArray, UInt32Array, new_null_array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{CastOptions, cast_with_options, take};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};

use crate::error::{Error, Result};

/// The file's columns `batch`, matched by lower-cased name to `target`'s fields and adapted to
/// their types; a column the file lacks is all NULL.
pub(crate) fn adapt_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    let schema = batch.schema();
    let columns = target
        .fields()
        .iter()
        .map(|field| {
            let found = schema
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(field.name()));
            match found {
                Some(i) => adapt_array(batch.column(i), field.data_type())
                    .map_err(|e| e.context(format!("in column `{}`", field.name()))),
                None => Ok(new_null_array(field.data_type(), batch.num_rows())),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(target),
        columns,
        &options,
    )?)
}

/// `array` with the type `target` (see the module documentation). Values that cannot be
/// converted become NULL.
pub(crate) fn adapt_array(array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if array.data_type() == target {
        return Ok(Arc::clone(array));
    }
    match (array.data_type(), target) {
        (DataType::List(_), DataType::List(to)) => {
            let list = array.as_list::<i32>();
            let values = adapt_array(list.values(), to.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                relax(to, &values),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        (DataType::LargeList(_), DataType::List(_)) => {
            let cast = cast_with_options(array, &DataType::List(list_item(array)?), &safe())?;
            adapt_array(&cast, target)
        }
        (DataType::LargeList(_), DataType::LargeList(to)) => {
            let list = array.as_list::<i64>();
            let values = adapt_array(list.values(), to.data_type())?;
            Ok(Arc::new(LargeListArray::try_new(
                relax(to, &values),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        (DataType::Map(_, _), DataType::Map(to, ordered)) => {
            let map = array.as_map();
            let DataType::Struct(kv) = to.data_type() else {
                return Err(Error::internal("map entries are not a struct"));
            };
            if kv.len() != 2 {
                return Err(Error::internal("map entries are not a key/value pair"));
            }
            // Entries match by position: writers name them differently (`key`/`value`,
            // `keys`/`values`, ...).
            let (offsets, keys, values) = referenced_entries(map)?;
            let keys = adapt_array(&keys, kv[0].data_type())?;
            let values = adapt_array(&values, kv[1].data_type())?;
            let key_nulls = keys.null_count();
            if key_nulls > 0 {
                return Err(Error::invalid(format!(
                    "a map in the file has {key_nulls} NULL keys, which the table's map type does \
                     not allow"
                )));
            }
            let fields = vec![relax(&kv[0], &keys), relax(&kv[1], &values)];
            let entries = StructArray::try_new(fields.into(), vec![keys, values], None)?;
            let entries_field =
                Arc::new(Field::clone(to).with_data_type(entries.data_type().clone()));
            Ok(Arc::new(MapArray::try_new(
                entries_field,
                offsets,
                entries,
                map.nulls().cloned(),
                *ordered,
            )?))
        }
        (DataType::Struct(from), DataType::Struct(to)) => {
            let st = array.as_struct();
            let columns = to
                .iter()
                .map(|field| {
                    match from
                        .iter()
                        .position(|f| f.name().eq_ignore_ascii_case(field.name()))
                    {
                        Some(i) => adapt_array(st.column(i), field.data_type()),
                        None => Ok(new_null_array(field.data_type(), st.len())),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let fields = to
                .iter()
                .zip(&columns)
                .map(|(f, c)| relax(f, c))
                .collect::<Vec<_>>();
            Ok(Arc::new(StructArray::try_new(
                fields.into(),
                columns,
                st.nulls().cloned(),
            )?))
        }
        _ => Ok(cast_with_options(array, target, &safe())?),
    }
}

/// The entries of `map` that its non-NULL maps refer to, with offsets rebased onto them.
///
/// Readers may leave entries behind NULL maps or outside a sliced array's range (ORC readers fill
/// the key slots of NULL maps with NULLs); only referenced entries carry meaning.
fn referenced_entries(map: &MapArray) -> Result<(OffsetBuffer<i32>, ArrayRef, ArrayRef)> {
    let offsets = map.value_offsets();
    let mut indices: Vec<u32> = Vec::new();
    let mut lengths = Vec::with_capacity(map.len());
    for i in 0..map.len() {
        let (start, end) = (offsets[i], offsets[i + 1]);
        if map.is_valid(i) && end > start {
            let (start, end) = (
                u32::try_from(start).map_err(|_| Error::internal("negative map offset"))?,
                u32::try_from(end).map_err(|_| Error::internal("negative map offset"))?,
            );
            indices.extend(start..end);
            lengths.push((end - start) as usize);
        } else {
            lengths.push(0);
        }
    }
    let indices = UInt32Array::from(indices);
    let keys = take(map.keys(), &indices, None)?;
    let values = take(map.values(), &indices, None)?;
    Ok((OffsetBuffer::from_lengths(lengths), keys, values))
}

fn list_item(array: &ArrayRef) -> Result<FieldRef> {
    match array.data_type() {
        DataType::LargeList(f) => Ok(Arc::clone(f)),
        other => Err(Error::internal(format!("{other} is not a large list"))),
    }
}

/// `field`, made nullable when `values` has NULLs it would not allow (a file whose writer was
/// looser than the table's declared type: the data wins over the declaration).
fn relax(field: &FieldRef, values: &ArrayRef) -> FieldRef {
    if !field.is_nullable() && values.null_count() > 0 {
        Arc::new(Field::clone(field).with_nullable(true))
    } else {
        Arc::clone(field)
    }
}

/// Cast options with which a value that does not fit becomes NULL, as Hive reads it.
pub(crate) fn safe() -> CastOptions<'static> {
    CastOptions {
        safe: true,
        ..CastOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Int32Array, Int32Builder, ListBuilder, TimestampNanosecondArray,
    };
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn renames_list_items_and_casts_leaves() {
        let mut b = ListBuilder::new(Int32Builder::new()).with_field(Field::new(
            "array_element",
            DataType::Int32,
            true,
        ));
        b.append_value([Some(1), None]);
        b.append_null();
        let array: ArrayRef = Arc::new(b.finish());
        let target = super::super::types::hive_to_arrow("array<bigint>").unwrap();
        let out = adapt_array(&array, &target).unwrap();
        assert_eq!(out.data_type(), &target);
        assert_eq!(out.null_count(), 1);
        let first = out.as_list::<i32>().value(0);
        assert_eq!(first.len(), 2);
        assert!(first.is_null(1));
    }

    #[test]
    fn nanosecond_timestamps_become_microseconds_and_missing_struct_fields_null() {
        let ts: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
            1_500_000_000_123_456_789,
        ]));
        let out = adapt_array(&ts, &DataType::Timestamp(TimeUnit::Microsecond, None)).unwrap();
        assert_eq!(
            out.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            1_500_000_000_123_456
        );
        let st: ArrayRef = Arc::new(StructArray::from(vec![(
            Arc::new(Field::new("A", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![7])) as ArrayRef,
        )]));
        let target = super::super::types::hive_to_arrow("struct<a:int,b:string>").unwrap();
        let out = adapt_array(&st, &target).unwrap();
        let out = out.as_struct();
        assert_eq!(
            out.column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .value(0),
            7
        );
        assert!(out.column(1).is_null(0));
    }
}
