//! Metastore objects ↔ Weir's catalog definitions.
//!
//! - A Hive table (any table without Weir's generic marker) becomes a [`TableDef`] whose columns
//!   are the data columns followed by the partition keys, with display options describing its
//!   storage (`'connector' = 'hive'`, `'stored-as'`, `'location'`, ...), and a [`HiveTableDesc`]
//!   for the Hive connector, which reads and writes its files.
//! - A Weir table with a `connector` option (a *generic* table) is kept in the table parameters
//!   the way Flink's `HiveCatalog` keeps its generic tables: `is_generic = true` and
//!   `flink.`-prefixed keys for the options and the schema (`flink.schema.<i>.name`,
//!   `flink.schema.<i>.data-type`, `flink.schema.<i>.expr`, `flink.schema.watermark.0.*`,
//!   `flink.schema.primary-key.*`, `flink.partition.keys.<i>.name`), with no Hive columns.
//! - Hive views become [`ViewDef`]s from their expanded (else original) text.
//!
//! Data path: metastore `Table` (Thrift) → [`table_from_hive`] → `CatalogTable` (planning) and
//! → [`hive_desc`] → `HiveTableDesc` (the Hive connector's scans and inserts); `CREATE TABLE` /
//! `CREATE VIEW` → [`hive_from_table`] → metastore `Table`.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use hive_metastore::{FieldSchema, SerDeInfo, StorageDescriptor, Table};
use pilota::{AHashMap, FastStr};

use super::types::{parse_hive_type, to_hive_type};
use crate::catalog::{CatalogTable, ColumnDef, ColumnKind, TableDef, ViewDef, WatermarkDef};
use crate::connectors::hive::{HiveFormat, HiveTableDesc};
use crate::error::{Error, Result};
use crate::types::SqlType;

pub const MANAGED_TABLE: &str = "MANAGED_TABLE";
pub const EXTERNAL_TABLE: &str = "EXTERNAL_TABLE";
pub const VIRTUAL_VIEW: &str = "VIRTUAL_VIEW";

const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const PARQUET_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const ORC_SERDE: &str = "org.apache.hadoop.hive.ql.io.orc.OrcSerde";
const ORC_INPUT: &str = "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat";
const ORC_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat";
const TEXT_SERDE: &str = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
const TEXT_INPUT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const TEXT_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";

/// The options a Hive (non-generic) table accepts in `CREATE TABLE ... WITH (...)`, besides
/// `serde.<key>` (SerDe parameters) and `property.<key>` (table parameters).
pub const HIVE_TABLE_OPTIONS: &[&str] = &[
    "connector",
    "stored-as",
    "location",
    "table-type",
    "serde-lib",
    "input-format",
    "output-format",
];

/// Marker parameter of generic tables (Flink's `HiveCatalog` writes the same one).
const IS_GENERIC: &str = "is_generic";
const FLINK: &str = "flink.";

fn s(v: &Option<FastStr>) -> &str {
    v.as_deref().unwrap_or("")
}

fn params(m: &Option<AHashMap<FastStr, FastStr>>) -> BTreeMap<String, String> {
    m.iter()
        .flatten()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn to_params(m: BTreeMap<String, String>) -> AHashMap<FastStr, FastStr> {
    m.into_iter()
        .map(|(k, v)| (FastStr::from(k), FastStr::from(v)))
        .collect()
}

/// Whether a metastore table is a Weir/Flink generic table.
pub fn is_generic(t: &Table) -> bool {
    let p = params(&t.parameters);
    p.get(IS_GENERIC)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || p.contains_key("flink.connector")
}

/// The data columns then the partition keys of a Hive table, with their Weir types.
fn hive_columns(name: &str, t: &Table) -> Result<(Vec<ColumnDef>, Vec<String>)> {
    let data =
        t.sd.as_ref()
            .and_then(|sd| sd.cols.clone())
            .unwrap_or_default();
    let keys = t.partition_keys.clone().unwrap_or_default();
    let mut columns = Vec::with_capacity(data.len() + keys.len());
    for f in data.iter().chain(keys.iter()) {
        let column = s(&f.name).to_string();
        let data_type = parse_hive_type(s(&f.r#type))
            .map_err(|e| e.context(format!("in column `{column}` of Hive table {name}")))?;
        columns.push(ColumnDef {
            name: column,
            kind: ColumnKind::Physical {
                data_type,
                nullable: true,
            },
            comment: f
                .comment
                .as_ref()
                .map(|c| c.to_string())
                .filter(|c| !c.is_empty()),
        });
    }
    Ok((
        columns,
        keys.iter().map(|k| s(&k.name).to_string()).collect(),
    ))
}

/// The storage format of a Hive table's storage descriptor, if Weir knows it.
fn storage(t: &Table) -> (String, String, String) {
    let sd = t.sd.as_ref();
    let serde = sd
        .and_then(|sd| sd.serde_info.as_ref())
        .map(|i| s(&i.serialization_lib).to_string())
        .unwrap_or_default();
    let input = sd
        .map(|sd| s(&sd.input_format).to_string())
        .unwrap_or_default();
    let output = sd
        .map(|sd| s(&sd.output_format).to_string())
        .unwrap_or_default();
    (serde, input, output)
}

fn format_name(f: HiveFormat) -> &'static str {
    match f {
        HiveFormat::Parquet => "parquet",
        HiveFormat::Orc => "orc",
        HiveFormat::Text => "textfile",
    }
}

/// A metastore table or view as a Weir catalog object. `name` is the full name, for messages.
///
/// # Errors
/// `Invalid`/`NotSupported` for column types Weir cannot map, a generic table whose stored
/// schema is malformed.
pub fn table_from_hive(name: &str, t: &Table) -> Result<CatalogTable> {
    let table_params = params(&t.parameters);
    let comment = table_params.get("comment").cloned();
    if s(&t.table_type) == VIRTUAL_VIEW {
        let text = t
            .view_expanded_text
            .as_ref()
            .filter(|v| !v.trim().is_empty())
            .or(t.view_original_text.as_ref())
            .map(|v| v.to_string())
            .ok_or_else(|| Error::invalid(format!("Hive view {name} has no stored query text")))?;
        let columns = match table_params.get("flink.view.columns") {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| Error::invalid(format!("view {name}: bad flink.view.columns: {e}")))?,
            None => Vec::new(),
        };
        return Ok(CatalogTable::View(ViewDef {
            query: text,
            columns,
            comment,
        }));
    }
    if is_generic(t) {
        return generic_from_params(name, &table_params).map(CatalogTable::Table);
    }
    let (columns, partition_keys) = hive_columns(name, t)?;
    let mut options = BTreeMap::from([("connector".to_string(), "hive".to_string())]);
    let (serde, input, output) = storage(t);
    match HiveFormat::from_storage(&serde, &input) {
        Ok(f) => {
            options.insert("stored-as".into(), format_name(f).into());
        }
        Err(_) => {
            options.insert("serde-lib".into(), serde);
            options.insert("input-format".into(), input);
            options.insert("output-format".into(), output);
        }
    }
    if let Some(location) = t.sd.as_ref().and_then(|sd| sd.location.as_ref()) {
        options.insert("location".into(), location.to_string());
    }
    options.insert("table-type".into(), s(&t.table_type).to_string());
    let serde_params =
        t.sd.as_ref()
            .and_then(|sd| sd.serde_info.as_ref())
            .map(|i| params(&i.parameters))
            .unwrap_or_default();
    for (k, v) in serde_params {
        if k != "serialization.format" && k != "path" {
            options.insert(format!("serde.{k}"), v);
        }
    }
    Ok(CatalogTable::Table(TableDef {
        columns,
        watermark: None,
        primary_key: None,
        partition_keys,
        options,
        comment,
    }))
}

/// What the Hive connector needs to read and write a (non-generic) Hive table.
///
/// # Errors
/// `NotSupported` for storage formats the connector cannot read, `Invalid` for unmappable
/// column types or a table without a location.
pub fn hive_desc(name: &str, t: &Table) -> Result<HiveTableDesc> {
    let (serde, input, _) = storage(t);
    let format = HiveFormat::from_storage(&serde, &input)
        .map_err(|e| e.context(format!("Hive table {name}")))?;
    let table_params = params(&t.parameters);
    let (columns, keys) = hive_columns(name, t)?;
    if table_params.contains_key("spark.sql.sources.provider")
        && columns.len() == 1
        && columns[0].name == "col"
        && keys.is_empty()
    {
        return Err(Error::not_supported(format!(
            "Spark datasource table {name} keeps its schema only in Spark's table properties; \
             reading it is not supported yet"
        )));
    }
    let location =
        t.sd.as_ref()
            .and_then(|sd| sd.location.as_ref())
            .map(|l| l.to_string())
            .ok_or_else(|| Error::invalid(format!("Hive table {name} has no location")))?;
    let fields: Vec<Field> = columns
        .iter()
        .filter_map(|c| match &c.kind {
            ColumnKind::Physical { data_type, .. } => {
                Some(Field::new(&c.name, data_type.to_arrow(), true))
            }
            ColumnKind::Computed { .. } => None,
        })
        .collect();
    Ok(HiveTableDesc {
        name: name.to_string(),
        location,
        format,
        serde_params: t
            .sd
            .as_ref()
            .and_then(|sd| sd.serde_info.as_ref())
            .map(|i| params(&i.parameters))
            .unwrap_or_default(),
        table_params,
        schema: Arc::new(Schema::new(fields)),
        partition_key_count: keys.len(),
    })
}

/// The storage classes for `'stored-as'`.
fn storage_classes(stored_as: &str) -> Result<(&'static str, &'static str, &'static str)> {
    match stored_as.trim().to_ascii_lowercase().as_str() {
        "parquet" => Ok((PARQUET_SERDE, PARQUET_INPUT, PARQUET_OUTPUT)),
        "orc" => Ok((ORC_SERDE, ORC_INPUT, ORC_OUTPUT)),
        "textfile" | "text" => Ok((TEXT_SERDE, TEXT_INPUT, TEXT_OUTPUT)),
        other => Err(Error::invalid(format!(
            "'stored-as' = '{other}' is not supported for Hive tables; valid values: parquet, orc, textfile"
        ))),
    }
}

/// A Weir catalog object as a new metastore table of `database`.
///
/// # Errors
/// `Invalid`/`NotSupported` for what a Hive table cannot hold (computed columns, watermarks and
/// primary keys of a Hive-format table; NOT NULL is dropped, Hive columns are nullable; types Hive lacks; partition keys
/// that are not the last columns), unknown options.
pub fn hive_from_table(
    database: &str,
    name: &str,
    table: &CatalogTable,
    owner: &str,
) -> Result<Table> {
    let full = format!("`{database}`.`{name}`");
    let mut t = Table {
        table_name: Some(name.to_string().into()),
        db_name: Some(database.to_string().into()),
        owner: Some(owner.to_string().into()),
        create_time: Some(now_secs()),
        last_access_time: Some(0),
        retention: Some(0),
        ..Default::default()
    };
    let empty_sd = |cols: Vec<FieldSchema>| StorageDescriptor {
        cols: Some(cols),
        location: None,
        input_format: Some(TEXT_INPUT.into()),
        output_format: Some(TEXT_OUTPUT.into()),
        compressed: Some(false),
        num_buckets: Some(-1),
        serde_info: Some(SerDeInfo {
            name: None,
            serialization_lib: Some(TEXT_SERDE.into()),
            parameters: Some(to_params(BTreeMap::from([(
                "serialization.format".to_string(),
                "1".to_string(),
            )]))),
        }),
        bucket_cols: Some(Vec::new()),
        sort_cols: Some(Vec::new()),
        parameters: Some(AHashMap::default()),
        skewed_info: None,
        stored_as_sub_directories: Some(false),
    };
    match table {
        CatalogTable::View(v) => {
            let mut p = BTreeMap::from([(IS_GENERIC.to_string(), "true".to_string())]);
            if !v.columns.is_empty() {
                p.insert(
                    "flink.view.columns".into(),
                    serde_json::to_string(&v.columns)
                        .map_err(|e| Error::internal(e.to_string()))?,
                );
            }
            if let Some(c) = &v.comment {
                p.insert("comment".into(), c.clone());
            }
            t.table_type = Some(VIRTUAL_VIEW.into());
            t.view_original_text = Some(v.query.clone().into());
            t.view_expanded_text = Some(v.query.clone().into());
            t.sd = Some(empty_sd(Vec::new()));
            t.partition_keys = Some(Vec::new());
            t.parameters = Some(to_params(p));
        }
        CatalogTable::Table(def) if matches!(def.connector(), Some(c) if c.trim() != "hive") => {
            t.table_type = Some(MANAGED_TABLE.into());
            t.sd = Some(empty_sd(Vec::new()));
            t.partition_keys = Some(Vec::new());
            t.parameters = Some(to_params(generic_to_params(def)));
        }
        CatalogTable::Table(def) => {
            let h = hive_storage(&full, def)?;
            t.table_type = Some(h.table_type.into());
            t.sd = Some(StorageDescriptor {
                cols: Some(h.cols),
                location: h.location.map(Into::into),
                input_format: Some(h.input.into()),
                output_format: Some(h.output.into()),
                serde_info: Some(SerDeInfo {
                    name: None,
                    serialization_lib: Some(h.serde.into()),
                    parameters: Some(to_params(h.serde_params)),
                }),
                ..empty_sd(Vec::new())
            });
            t.partition_keys = Some(h.partition_keys);
            t.parameters = Some(to_params(h.table_params));
        }
    }
    Ok(t)
}

/// What a Hive-format table definition becomes in the metastore.
struct HiveStorage {
    cols: Vec<FieldSchema>,
    location: Option<String>,
    serde: String,
    input: String,
    output: String,
    serde_params: BTreeMap<String, String>,
    partition_keys: Vec<FieldSchema>,
    table_params: BTreeMap<String, String>,
    table_type: &'static str,
}

/// The storage descriptor parts, partition keys, table parameters and table type of a
/// Hive-format table definition.
fn hive_storage(full: &str, def: &TableDef) -> Result<HiveStorage> {
    if def.watermark.is_some() || def.primary_key.is_some() {
        return Err(Error::not_supported(format!(
            "Hive table {full} cannot have a WATERMARK or PRIMARY KEY; give it a 'connector' \
             option to store it as a generic table"
        )));
    }
    let mut fields = Vec::new();
    for c in &def.columns {
        match &c.kind {
            ColumnKind::Computed { .. } => {
                return Err(Error::not_supported(format!(
                    "Hive table {full} cannot have computed column `{}`; give the table a \
                     'connector' option to store it as a generic table",
                    c.name
                )));
            }
            // Hive columns are always nullable: NOT NULL is not kept.
            ColumnKind::Physical { data_type, .. } => {
                let hive_type = to_hive_type(data_type)
                    .map_err(|e| e.context(format!("in column `{}` of {full}", c.name)))?;
                fields.push(FieldSchema {
                    name: Some(c.name.to_ascii_lowercase().into()),
                    r#type: Some(hive_type.into()),
                    comment: c.comment.clone().map(Into::into),
                });
            }
        }
    }
    if def
        .columns
        .iter()
        .any(|c| c.name != c.name.to_ascii_lowercase())
    {
        return Err(Error::invalid(format!(
            "Hive table {full}: column names must be lower case (the metastore lower-cases them)"
        )));
    }
    let n = def.partition_keys.len();
    if n > 0 {
        let tail: Vec<&str> = fields[fields.len().saturating_sub(n)..]
            .iter()
            .map(|f| s(&f.name))
            .collect();
        let keys: Vec<&str> = def.partition_keys.iter().map(String::as_str).collect();
        if n >= fields.len() || tail != keys {
            return Err(Error::invalid(format!(
                "Hive table {full}: the PARTITIONED BY columns ({}) must be the last columns, in \
                 that order, after at least one data column (Hive stores them after the data columns)",
                keys.join(", ")
            )));
        }
    }
    let keys = fields.split_off(fields.len() - n);
    let mut stored_as = "parquet".to_string();
    let mut location = None;
    let mut table_type = MANAGED_TABLE;
    let mut classes: [Option<String>; 3] = [None, None, None];
    let mut serde_params = BTreeMap::from([("serialization.format".to_string(), "1".to_string())]);
    let mut table_params = BTreeMap::new();
    for (k, v) in &def.options {
        match k.as_str() {
            "connector" => {}
            "stored-as" => stored_as = v.clone(),
            "location" => location = Some(v.clone()),
            "table-type" => {
                table_type = match v.trim().to_ascii_uppercase().as_str() {
                    "MANAGED_TABLE" | "MANAGED" => MANAGED_TABLE,
                    "EXTERNAL_TABLE" | "EXTERNAL" => EXTERNAL_TABLE,
                    other => {
                        return Err(Error::invalid(format!(
                            "Hive table {full}: 'table-type' = '{other}' is not valid; valid values: MANAGED_TABLE, EXTERNAL_TABLE"
                        )));
                    }
                }
            }
            "serde-lib" => classes[0] = Some(v.clone()),
            "input-format" => classes[1] = Some(v.clone()),
            "output-format" => classes[2] = Some(v.clone()),
            _ => {
                if let Some(key) = k.strip_prefix("serde.") {
                    serde_params.insert(key.to_string(), v.clone());
                } else if let Some(key) = k.strip_prefix("property.") {
                    table_params.insert(key.to_string(), v.clone());
                } else {
                    return Err(Error::invalid(format!(
                        "unknown option '{k}' for Hive table {full}; valid options: {}, serde.<key>, \
                         property.<key> (or give a 'connector' option for a generic table)",
                        HIVE_TABLE_OPTIONS.join(", ")
                    )));
                }
            }
        }
    }
    let (serde, input, output) = match classes {
        [None, None, None] => {
            let (a, b, c) =
                storage_classes(&stored_as).map_err(|e| e.context(format!("Hive table {full}")))?;
            (a.to_string(), b.to_string(), c.to_string())
        }
        [Some(a), Some(b), Some(c)] => (a, b, c),
        _ => {
            return Err(Error::invalid(format!(
                "Hive table {full}: give all of 'serde-lib', 'input-format' and 'output-format', or none"
            )));
        }
    };
    if table_type == EXTERNAL_TABLE {
        if location.is_none() {
            return Err(Error::invalid(format!(
                "external Hive table {full} needs a 'location' option"
            )));
        }
        table_params.insert("EXTERNAL".into(), "TRUE".into());
    }
    if let Some(c) = &def.comment {
        table_params.insert("comment".into(), c.clone());
    }
    Ok(HiveStorage {
        cols: fields,
        location,
        serde,
        input,
        output,
        serde_params,
        partition_keys: keys,
        table_params,
        table_type,
    })
}

fn now_secs() -> i32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i32)
        .unwrap_or(0)
}

/// The table parameters of a generic table (Flink's `HiveCatalog` layout).
fn generic_to_params(def: &TableDef) -> BTreeMap<String, String> {
    let mut p = BTreeMap::from([(IS_GENERIC.to_string(), "true".to_string())]);
    for (k, v) in &def.options {
        p.insert(format!("{FLINK}{k}"), v.clone());
    }
    for (i, c) in def.columns.iter().enumerate() {
        p.insert(format!("flink.schema.{i}.name"), c.name.clone());
        match &c.kind {
            ColumnKind::Physical {
                data_type,
                nullable,
            } => {
                let not_null = if *nullable { "" } else { " NOT NULL" };
                p.insert(
                    format!("flink.schema.{i}.data-type"),
                    format!("{data_type}{not_null}"),
                );
            }
            ColumnKind::Computed { expr } => {
                p.insert(format!("flink.schema.{i}.expr"), expr.clone());
            }
        }
        if let Some(comment) = &c.comment {
            p.insert(format!("flink.schema.{i}.comment"), comment.clone());
        }
    }
    if let Some(w) = &def.watermark {
        p.insert("flink.schema.watermark.0.rowtime".into(), w.column.clone());
        p.insert(
            "flink.schema.watermark.0.strategy.expr".into(),
            w.expr.clone(),
        );
    }
    if let Some(pk) = &def.primary_key {
        p.insert("flink.schema.primary-key.columns".into(), pk.join(","));
    }
    for (i, k) in def.partition_keys.iter().enumerate() {
        p.insert(format!("flink.partition.keys.{i}.name"), k.clone());
    }
    if let Some(c) = &def.comment {
        p.insert("comment".into(), c.clone());
    }
    p
}

/// Reads a generic table back from its parameters.
fn generic_from_params(name: &str, p: &BTreeMap<String, String>) -> Result<TableDef> {
    let bad = |what: String| {
        Error::invalid(format!(
            "generic table {name} in the Hive Metastore: {what}"
        ))
    };
    let mut columns = Vec::new();
    for i in 0.. {
        let Some(col) = p.get(&format!("flink.schema.{i}.name")) else {
            break;
        };
        let kind = match (
            p.get(&format!("flink.schema.{i}.data-type")),
            p.get(&format!("flink.schema.{i}.expr")),
        ) {
            (_, Some(expr)) => ColumnKind::Computed { expr: expr.clone() },
            (Some(t), None) => {
                let (data_type, nullable) = parse_flink_type_text(t)
                    .map_err(|e| bad(format!("column `{col}` has type '{t}': {}", e.message)))?;
                ColumnKind::Physical {
                    data_type,
                    nullable,
                }
            }
            (None, None) => return Err(bad(format!("column `{col}` has no data-type"))),
        };
        columns.push(ColumnDef {
            name: col.clone(),
            kind,
            comment: p.get(&format!("flink.schema.{i}.comment")).cloned(),
        });
    }
    let options: BTreeMap<String, String> = p
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(FLINK)?;
            (!key.starts_with("schema.")
                && !key.starts_with("partition.")
                && !key.starts_with("view."))
            .then(|| (key.to_string(), v.clone()))
        })
        .collect();
    let watermark = p
        .get("flink.schema.watermark.0.rowtime")
        .map(|column| -> Result<WatermarkDef> {
            Ok(WatermarkDef {
                column: column.clone(),
                expr: p
                    .get("flink.schema.watermark.0.strategy.expr")
                    .cloned()
                    .ok_or_else(|| bad("the watermark has no strategy.expr".into()))?,
            })
        })
        .transpose()?;
    let primary_key = p
        .get("flink.schema.primary-key.columns")
        .map(|c| c.split(',').map(|s| s.trim().to_string()).collect());
    let mut partition_keys = Vec::new();
    while let Some(k) = p.get(&format!(
        "flink.partition.keys.{}.name",
        partition_keys.len()
    )) {
        partition_keys.push(k.clone());
    }
    Ok(TableDef {
        columns,
        watermark,
        primary_key,
        partition_keys,
        options,
        comment: p.get("comment").cloned(),
    })
}

/// A Flink type string (`INT NOT NULL`, `ROW<`a` STRING>`) and its nullability.
fn parse_flink_type_text(text: &str) -> Result<(SqlType, bool)> {
    let dialect = crate::sql::dialect::FlinkDialect;
    let mut p = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| Error::invalid(e.to_string()))?;
    let t = crate::sql::parse_flink_type(&mut p).map_err(|e| Error::invalid(e.to_string()))?;
    let not_null = p.parse_keywords(&[Keyword::NOT, Keyword::NULL]);
    if p.peek_token().token != Token::EOF {
        return Err(Error::invalid(format!(
            "unexpected text after the type in '{text}'"
        )));
    }
    Ok((t, !not_null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RowField;

    fn phys(name: &str, t: SqlType, nullable: bool) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            kind: ColumnKind::Physical {
                data_type: t,
                nullable,
            },
            comment: None,
        }
    }

    #[test]
    fn generic_tables_round_trip_through_parameters() {
        let def = TableDef {
            columns: vec![
                phys("id", SqlType::BigInt, false),
                phys(
                    "r",
                    SqlType::Row {
                        fields: vec![RowField {
                            name: "a b".into(),
                            data_type: SqlType::Varchar { length: 5 },
                            nullable: false,
                        }],
                    },
                    true,
                ),
                phys("ts", SqlType::Timestamp { precision: 3 }, true),
                ColumnDef {
                    name: "c".into(),
                    kind: ColumnKind::Computed {
                        expr: "`id` * 2".into(),
                    },
                    comment: Some("doubled".into()),
                },
                phys("dt", SqlType::String, true),
            ],
            watermark: Some(WatermarkDef {
                column: "ts".into(),
                expr: "`ts` - INTERVAL '5' SECOND".into(),
            }),
            primary_key: Some(vec!["id".into()]),
            partition_keys: vec!["dt".into()],
            options: BTreeMap::from([
                ("connector".into(), "filesystem".into()),
                ("path".into(), "/tmp/x".into()),
                ("format".into(), "json".into()),
            ]),
            comment: Some("a table".into()),
        };
        let t = hive_from_table("db", "t", &CatalogTable::Table(def.clone()), "me").unwrap();
        assert!(is_generic(&t));
        let p = params(&t.parameters);
        assert_eq!(p["flink.connector"], "filesystem");
        assert_eq!(p["flink.schema.0.data-type"], "BIGINT NOT NULL");
        assert_eq!(
            table_from_hive("db.t", &t).unwrap(),
            CatalogTable::Table(def)
        );
    }

    #[test]
    fn hive_tables_get_storage_and_partition_keys() {
        let def = TableDef {
            columns: vec![
                phys("id", SqlType::Int, true),
                phys(
                    "amount",
                    SqlType::Decimal {
                        precision: 10,
                        scale: 2,
                    },
                    true,
                ),
                phys("dt", SqlType::String, true),
                phys("hr", SqlType::Int, true),
            ],
            watermark: None,
            primary_key: None,
            partition_keys: vec!["dt".into(), "hr".into()],
            options: BTreeMap::new(),
            comment: None,
        };
        let t = hive_from_table("db", "t", &CatalogTable::Table(def.clone()), "me").unwrap();
        assert_eq!(s(&t.table_type), MANAGED_TABLE);
        let sd = t.sd.clone().unwrap();
        assert_eq!(s(&sd.input_format), PARQUET_INPUT);
        assert_eq!(sd.cols.as_ref().unwrap().len(), 2);
        assert_eq!(s(&sd.cols.as_ref().unwrap()[1].r#type), "decimal(10,2)");
        let keys = t.partition_keys.clone().unwrap();
        assert_eq!(
            keys.iter().map(|k| s(&k.name)).collect::<Vec<_>>(),
            ["dt", "hr"]
        );
        // Read back (the metastore adds a location).
        let mut stored = t.clone();
        if let Some(sd) = stored.sd.as_mut() {
            sd.location = Some("file:/w/db.db/t".into());
        }
        let CatalogTable::Table(back) = table_from_hive("db.t", &stored).unwrap() else {
            panic!("a table")
        };
        assert_eq!(back.columns, def.columns);
        assert_eq!(back.partition_keys, def.partition_keys);
        assert_eq!(back.options["connector"], "hive");
        assert_eq!(back.options["stored-as"], "parquet");
        assert_eq!(back.options["location"], "file:/w/db.db/t");
        let desc = hive_desc("h.db.t", &stored).unwrap();
        assert_eq!(desc.format, HiveFormat::Parquet);
        assert_eq!(desc.partition_key_count, 2);
        let names: Vec<&str> = desc
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["id", "amount", "dt", "hr"]);
        assert_eq!(desc.location, "file:/w/db.db/t");

        // Partition keys must be last.
        let mut bad = def.clone();
        bad.partition_keys = vec!["id".into()];
        let err = hive_from_table("db", "t", &CatalogTable::Table(bad), "me").unwrap_err();
        assert!(err.message.contains("must be the last columns"), "{err}");
        let mut bad = def.clone();
        bad.options.insert("stored-as".into(), "avro".into());
        let err = hive_from_table("db", "t", &CatalogTable::Table(bad), "me").unwrap_err();
        assert!(
            err.message.contains("valid values: parquet, orc, textfile"),
            "{err}"
        );
        let mut bad = def;
        bad.options.insert("pathh".into(), "x".into());
        let err = hive_from_table("db", "t", &CatalogTable::Table(bad), "me").unwrap_err();
        assert!(err.message.contains("unknown option 'pathh'"), "{err}");
    }

    #[test]
    fn hive_views_use_their_expanded_text() {
        let t = Table {
            table_type: Some(VIRTUAL_VIEW.into()),
            view_original_text: Some("SELECT id FROM t".into()),
            view_expanded_text: Some("SELECT `t`.`id` FROM `db`.`t`".into()),
            ..Default::default()
        };
        let CatalogTable::View(v) = table_from_hive("h.db.v", &t).unwrap() else {
            panic!("a view")
        };
        assert_eq!(v.query, "SELECT `t`.`id` FROM `db`.`t`");
    }
}
