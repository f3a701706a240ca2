//! Tests of the debezium-json lines: encoding, decoding, round trips and bad input.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    Time64MicrosecondArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, Int32Type, Schema, SchemaRef, TimeUnit,
};

use super::*;
use crate::stream::changes::{Changes, RowKind};

fn config(iso: bool, ignore: bool) -> DebeziumConfig {
    DebeziumConfig {
        ignore_parse_errors: ignore,
        timestamp_standard: if iso {
            TimestampStandard::Iso8601
        } else {
            TimestampStandard::Sql
        },
    }
}

fn simple_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("n", DataType::Int64, true),
    ]))
}

fn simple(keys: &[&str], values: &[Option<i64>]) -> RecordBatch {
    RecordBatch::try_new(
        simple_schema(),
        vec![
            Arc::new(StringArray::from(keys.to_vec())),
            Arc::new(Int64Array::from(values.to_vec())),
        ],
    )
    .unwrap()
}

fn encode(changes: &Changes, config: &DebeziumConfig) -> String {
    let mut out = String::new();
    Encoder::new(&changes.data.schema(), config)
        .encode(changes, &mut out)
        .unwrap();
    out
}

fn lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

fn decode(schema: SchemaRef, config: &DebeziumConfig, text: &str) -> Result<Changes> {
    Decoder::new(schema, config).decode(Path::new("/t/part-x-0.json"), &lines(text))
}

fn kinds(c: &Changes) -> Vec<&'static str> {
    (0..c.num_rows()).map(|i| c.kind(i).short()).collect()
}

#[test]
fn writes_each_change_as_flink_does() {
    let changes = Changes::new(
        simple(&["a", "a", "a", "b"], &[Some(1), Some(1), Some(2), None]),
        vec![
            RowKind::Insert,
            RowKind::UpdateBefore,
            RowKind::UpdateAfter,
            RowKind::Delete,
        ],
    )
    .unwrap();
    assert_eq!(
        encode(&changes, &config(false, false)),
        "{\"before\":null,\"after\":{\"k\":\"a\",\"n\":1},\"op\":\"c\"}\n\
         {\"before\":{\"k\":\"a\",\"n\":1},\"after\":null,\"op\":\"d\"}\n\
         {\"before\":null,\"after\":{\"k\":\"a\",\"n\":2},\"op\":\"c\"}\n\
         {\"before\":{\"k\":\"b\",\"n\":null},\"after\":null,\"op\":\"d\"}\n"
    );
}

#[test]
fn reads_every_op() {
    let text = r#"{"before":null,"after":{"k":"a","n":1},"op":"c"}
{"before":null,"after":{"k":"b","n":2},"op":"r","source":{"db":"x"},"ts_ms":1}

{"before":{"k":"a","n":1},"after":{"k":"a","n":5},"op":"u"}
{"before":{"k":"b","n":2},"after":null,"op":"d"}
{"after":{"k":"c"},"op":"c"}"#;
    let c = decode(simple_schema(), &config(false, false), text).unwrap();
    assert_eq!(kinds(&c), vec!["+I", "+I", "-U", "+U", "-D", "+I"]);
    let k = c.data.column(0).as_string::<i32>();
    let n = c
        .data
        .column(1)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    assert_eq!(
        (0..6).map(|i| k.value(i)).collect::<Vec<_>>(),
        vec!["a", "b", "a", "a", "b", "c"]
    );
    assert_eq!(n.value(3), 5);
    assert!(n.is_null(5), "a missing field is NULL");
}

#[test]
fn round_trips_nulls_and_escapes() {
    let batch = simple(
        &["quote \" slash \\ nl \n tab \t é \u{1}", ""],
        &[None, Some(-7)],
    );
    let changes = Changes::inserts(batch.clone());
    let text = encode(&changes, &config(false, false));
    assert!(text.contains("\\u0001"), "{text}");
    let back = decode(simple_schema(), &config(false, false), &text).unwrap();
    assert_eq!(back.data, batch);
    assert!(back.is_insert_only());
}

fn typed_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("b", DataType::Boolean, true),
        Field::new("i", DataType::Int32, true),
        Field::new("d", DataType::Float64, true),
        Field::new("m", DataType::Decimal128(20, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new(
            "ltz",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("bytes", DataType::Binary, true),
    ]))
}

fn typed_batch() -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(42)])),
        Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(f64::NAN),
            Some(f64::NEG_INFINITY),
        ])),
        Arc::new(
            Decimal128Array::from(vec![Some(1_234_567_890_123_456_789_i128), None, Some(-5)])
                .with_precision_and_scale(20, 2)
                .unwrap(),
        ),
        Arc::new(Date32Array::from(vec![Some(19_753), Some(-1), None])),
        Arc::new(Time64MicrosecondArray::from(vec![
            Some(45_000_500_000),
            None,
            Some(0),
        ])),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_706_704_200_500),
            Some(-1),
            None,
        ])),
        Arc::new(
            TimestampMillisecondArray::from(vec![Some(1_706_704_200_000), None, Some(0)])
                .with_timezone("UTC"),
        ),
        Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\xffhi"[..]),
            None,
            Some(&b""[..]),
        ])),
    ];
    RecordBatch::try_new(typed_schema(), columns).unwrap()
}

#[test]
fn writes_values_as_flink_json() {
    let text = encode(&Changes::inserts(typed_batch()), &config(false, false));
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "{\"before\":null,\"after\":{\"b\":true,\"i\":-2147483648,\"d\":1.5,\
         \"m\":12345678901234567.89,\"day\":\"2024-01-31\",\"t\":\"12:30:00.5\",\
         \"ts\":\"2024-01-31 12:30:00.5\",\"ltz\":\"2024-01-31 12:30:00Z\",\
         \"bytes\":\"AP9oaQ==\"},\"op\":\"c\"}"
    );
    let second = text.lines().nth(1).unwrap();
    assert!(second.contains("\"d\":\"NaN\""), "{second}");
    assert!(second.contains("\"day\":\"1969-12-31\""), "{second}");
    assert!(
        second.contains("\"ts\":\"1969-12-31 23:59:59.999\""),
        "{second}"
    );
    let third = text.lines().nth(2).unwrap();
    assert!(third.contains("\"d\":\"-Infinity\""), "{third}");
    assert!(third.contains("\"m\":-0.05"), "{third}");
    assert!(third.contains("\"t\":\"00:00:00\""), "{third}");

    let iso = encode(&Changes::inserts(typed_batch()), &config(true, false));
    assert!(iso.contains("\"ts\":\"2024-01-31T12:30:00.5\""), "{iso}");
    assert!(iso.contains("\"ltz\":\"2024-01-31T12:30:00Z\""), "{iso}");
}

#[test]
fn typed_values_round_trip_in_both_timestamp_standards() {
    for iso in [false, true] {
        let text = encode(&Changes::inserts(typed_batch()), &config(iso, false));
        // Reading takes either standard.
        let back = decode(typed_schema(), &config(!iso, false), &text).unwrap();
        let (got, want) = (back.data, typed_batch());
        for i in 0..want.num_columns() {
            if i == 2 {
                let (g, w) = (
                    got.column(i)
                        .as_primitive::<datafusion::arrow::datatypes::Float64Type>(),
                    want.column(i)
                        .as_primitive::<datafusion::arrow::datatypes::Float64Type>(),
                );
                assert_eq!(g.value(0), w.value(0));
                assert!(g.value(1).is_nan());
                assert_eq!(g.value(2), f64::NEG_INFINITY);
            } else {
                assert_eq!(
                    got.column(i).as_ref(),
                    want.column(i).as_ref(),
                    "column {i}"
                );
            }
        }
    }
}

#[test]
fn reads_lenient_values() {
    let text = r#"{"after":{"b":"TRUE","i":"12","d":"3","m":"1.005","ts":"2024-01-31T12:30:00+02:00","ltz":"2024-01-31 12:30:00"},"op":"c"}"#;
    let c = decode(typed_schema(), &config(false, false), text).unwrap();
    let row = c.data;
    assert!(row.column(0).as_boolean().value(0));
    assert_eq!(row.column(1).as_primitive::<Int32Type>().value(0), 12);
    assert_eq!(
        row.column(3)
            .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
            .value(0),
        100
    );
    assert_eq!(
        row.column(6)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>()
            .value(0),
        1_706_697_000_000
    );
    assert_eq!(
        row.column(7)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>()
            .value(0),
        1_706_704_200_000
    );
}

fn nested_schema() -> SchemaRef {
    let inner = Fields::from(vec![
        Field::new("x", DataType::Int32, false),
        Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("r", DataType::Struct(inner), true),
        Field::new("l", DataType::new_list(DataType::Int32, true), true),
        Field::new(
            "m",
            DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", DataType::Utf8, false),
                        Field::new("value", DataType::Int64, true),
                    ])),
                    false,
                )),
                false,
            ),
            true,
        ),
    ]))
}

#[test]
fn nested_rows_lists_and_maps_round_trip() {
    let text = r#"{"before":null,"after":{"r":{"x":1,"tags":["a",null]},"l":[1,null,3],"m":{"b":2,"a":null}},"op":"c"}
{"before":null,"after":{"r":null,"l":[],"m":null},"op":"c"}
{"before":null,"after":{"r":{"x":2,"tags":null},"l":null,"m":{}},"op":"c"}"#;
    let c = decode(nested_schema(), &config(false, false), text).unwrap();
    assert_eq!(c.num_rows(), 3);
    let r = c
        .data
        .column(0)
        .as_any()
        .downcast_ref::<StructArray>()
        .unwrap();
    assert!(r.is_null(1));
    assert_eq!(r.column(0).as_primitive::<Int32Type>().value(2), 2);
    let l = c
        .data
        .column(1)
        .as_any()
        .downcast_ref::<ListArray>()
        .unwrap();
    assert_eq!(l.value(0).len(), 3);
    assert!(l.is_null(2));
    // Written back: the same lines (map keys in sorted order).
    let again = encode(&c, &config(false, false));
    assert_eq!(
        again.lines().next().unwrap(),
        r#"{"before":null,"after":{"r":{"x":1,"tags":["a",null]},"l":[1,null,3],"m":{"a":null,"b":2}},"op":"c"}"#
    );
    let back = decode(nested_schema(), &config(false, false), &again).unwrap();
    assert_eq!(back.data, c.data);
}

#[test]
fn not_null_inside_a_null_row_is_fine_but_not_inside_a_present_one() {
    let ok = r#"{"after":{"r":null},"op":"c"}"#;
    assert!(decode(nested_schema(), &config(false, false), ok).is_ok());
    let bad = "{\"after\":{\"r\":{\"x\":1}},\"op\":\"c\"}\n{\"after\":{\"r\":{\"tags\":[]}},\"op\":\"c\"}";
    let err = decode(nested_schema(), &config(false, false), bad).unwrap_err();
    assert!(
        err.message.contains("line 2 of '/t/part-x-0.json'")
            && err.message.contains("`r.x`")
            && err.message.contains("NOT NULL"),
        "{err}"
    );
}

#[test]
fn bad_lines_name_the_file_and_line() {
    let cases = [
        (
            "{\"after\":{\"k\":\"a\"},\"op\":\"c\"}\n{\"after\": {\"k\": ",
            "line 2",
            "malformed JSON",
        ),
        (
            "{\"after\":{\"k\":\"a\"},\"op\":\"x\"}",
            "line 1",
            "unknown \"op\" value \"x\"",
        ),
        ("{\"after\":{\"k\":\"a\"}}", "line 1", "no \"op\""),
        (
            "{\"before\":null,\"after\":{\"k\":\"a\"},\"op\":\"d\"}",
            "line 1",
            "\"before\" is null",
        ),
        (
            "{\"before\":{\"k\":\"a\"},\"op\":\"u\"}",
            "line 1",
            "\"after\" is null",
        ),
        ("[1, 2]", "line 1", "not a JSON object"),
        (
            "\n\n{\"after\":{\"k\":\"a\",\"n\":\"x\"},\"op\":\"c\"}",
            "line 3",
            "`n`: expected an integer",
        ),
        (
            "{\"after\":{\"k\":null},\"op\":\"c\"}",
            "line 1",
            "NOT NULL",
        ),
        ("{\"after\":5,\"op\":\"c\"}", "line 1", "not a JSON object"),
        (
            "{\"schema\":{},\"payload\":{\"after\":{\"k\":\"a\"},\"op\":\"c\"}}",
            "line 1",
            "schema-include",
        ),
    ];
    for (text, line, what) in cases {
        let err = decode(simple_schema(), &config(false, false), text).unwrap_err();
        assert!(
            err.message
                .contains(&format!("{line} of '/t/part-x-0.json'"))
                && err.message.contains(what),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn ignore_parse_errors_skips_whole_lines() {
    let text = r#"{"before":null,"after":{"k":"a","n":1},"op":"c"}
not json
{"before":{"k":"a","n":1},"after":{"k":"a","n":"bad"},"op":"u"}
{"before":null,"after":{"k":"b","n":2},"op":"?"}
{"before":null,"after":{"k":"c","n":3},"op":"c"}"#;
    let c = decode(simple_schema(), &config(false, true), text).unwrap();
    assert_eq!(kinds(&c), vec!["+I", "+I"]);
    let k = c.data.column(0).as_string::<i32>();
    assert_eq!((k.value(0), k.value(1)), ("a", "c"));
}

#[test]
fn options_are_checked() {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let m = map(&[
        ("debezium-json.timestamp-format.standard", "iso-8601"),
        ("debezium-json.ignore-parse-errors", "true"),
    ]);
    let c = DebeziumConfig::parse(&ConnectorOptions::new(Some("t"), "filesystem", &m)).unwrap();
    assert_eq!(c, config(true, true));
    let m = map(&[("debezium-json.timestamp-format.standard", "RFC")]);
    let err =
        DebeziumConfig::parse(&ConnectorOptions::new(Some("t"), "filesystem", &m)).unwrap_err();
    assert!(err.message.contains("SQL, ISO-8601"), "{err}");
    let m = map(&[("debezium-json.schema-include", "true")]);
    let err =
        DebeziumConfig::parse(&ConnectorOptions::new(Some("t"), "filesystem", &m)).unwrap_err();
    assert_eq!(err.code, crate::error::ErrorCode::NotSupported);
    let m = map(&[("debezium-json.schema-include", "false")]);
    assert!(DebeziumConfig::parse(&ConnectorOptions::new(Some("t"), "filesystem", &m)).is_ok());
}
