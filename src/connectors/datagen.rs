//! The `datagen` connector: a source of generated rows, as in Flink. Each field is `random`
//! (bounded by `fields.<col>.min` / `.max`, `.length`, `.max-past`) or a `sequence` from
//! `fields.<col>.start` to `.end`; `fields.<col>.null-rate` makes some values NULL. The table is
//! bounded by `number-of-rows` and by its sequences (it ends when the shortest is exhausted);
//! without either it is unbounded: it makes `rows-per-second` rows (default 10000) every second
//! of wall-clock time, forever (streaming mode only; batch mode refuses unbounded tables).
//!
//! Rows are produced lazily, 8192 at a time, by [`DatagenExec`], split into row ranges across a
//! few partitions (row `i` of a sequence is always `start + i`, whichever partition makes it).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch,
    RecordBatchOptions, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::{cast, nullif};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::options::ConnectorOptions;
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::types::SqlType;

const OPTIONS: &[&str] = &["number-of-rows", "rows-per-second"];
const FIELD_OPTIONS: &[&str] = &[
    "kind",
    "min",
    "max",
    "start",
    "end",
    "length",
    "max-past",
    "null-rate",
];
/// Default `rows-per-second`.
const DEFAULT_RATE: u64 = 10_000;
/// Rows per generated batch.
const BATCH_SIZE: usize = 8192;
/// At most this many bytes of generated strings/bytes per batch (fewer rows per batch for long
/// values), so a batch stays well inside Arrow's 2 GiB offset limit and memory stays bounded.
const BATCH_BYTES: usize = 16 << 20;
/// Default length of generated strings and bytes.
const DEFAULT_LENGTH: usize = 100;
/// At most this many partitions.
const MAX_PARTITIONS: usize = 4;

/// How one column's values are made.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Integers in `[min, max]` (also BOOLEAN, which ignores the bounds).
    RandomInt {
        min: i64,
        max: i64,
    },
    /// Floating-point (and DECIMAL) values in `[min, max]`.
    RandomFloat {
        min: f64,
        max: f64,
    },
    RandomBool,
    /// Hex strings (STRING) or random bytes (BYTES) of `length`.
    RandomString {
        length: usize,
    },
    RandomBytes {
        length: usize,
    },
    /// Dates / timestamps between now minus `max_past` and now.
    RandomDate {
        max_past: Duration,
    },
    RandomTimestamp {
        max_past: Duration,
    },
    /// `start, start + 1, ..., end`.
    Sequence {
        start: i64,
        end: i64,
    },
}

/// One column's generator.
#[derive(Debug, Clone, PartialEq)]
struct FieldGen {
    name: String,
    data_type: DataType,
    kind: Kind,
    null_rate: f64,
}

impl fmt::Display for FieldGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name)?;
        match &self.kind {
            Kind::Sequence { start, end } => write!(f, "sequence({start}..{end})")?,
            Kind::RandomInt { min, max } => write!(f, "random({min}..{max})")?,
            Kind::RandomFloat { min, max } => write!(f, "random({min}..{max})")?,
            Kind::RandomBool => write!(f, "random")?,
            Kind::RandomString { length } | Kind::RandomBytes { length } => {
                write!(f, "random(length={length})")?
            }
            Kind::RandomDate { max_past } | Kind::RandomTimestamp { max_past } => {
                write!(f, "random(max-past={}ms)", max_past.as_millis())?
            }
        }
        if self.null_rate > 0.0 {
            write!(f, ", null-rate={}", self.null_rate)?;
        }
        Ok(())
    }
}

/// A datagen table's parsed options.
#[derive(Debug, Clone)]
struct DatagenConfig {
    fields: Vec<FieldGen>,
    /// Rows the table has; `None` when unbounded.
    rows: Option<u64>,
    /// `rows-per-second`: the pace of an unbounded table.
    rate: u64,
}

/// Checks a datagen table's options.
pub(crate) fn validate(o: &ConnectorOptions, def: &TableDef) -> Result<()> {
    parse(o, def).map(|_| ())
}

fn parse(o: &ConnectorOptions, def: &TableDef) -> Result<DatagenConfig> {
    let columns: Vec<&str> = def
        .physical_columns()
        .map(|(c, _, _)| c.name.as_str())
        .collect();
    o.check_known(&super::options::source_options(OPTIONS), |key| {
        let Some(rest) = key.strip_prefix("fields.") else { return Ok(false) };
        let Some((col, prop)) = rest.rsplit_once('.') else { return Ok(false) };
        if !FIELD_OPTIONS.contains(&prop) {
            return Ok(false);
        }
        if !columns.contains(&col) {
            return Err(Error::invalid(format!(
                "option '{key}' of {} names `{col}`, which is not a physical column; physical columns: {}",
                o.describe(),
                columns.join(", ")
            )));
        }
        Ok(true)
    })?;
    let number_of_rows = o.u64("number-of-rows")?;
    let rate = match o.u64("rows-per-second")? {
        None => DEFAULT_RATE,
        Some(0) => return Err(o.bad_value("rows-per-second", "0", "expected a positive integer")),
        Some(r) => r,
    };
    let mut fields = Vec::new();
    for (column, ty, _) in def.physical_columns() {
        fields.push(parse_field(o, &column.name, ty)?);
    }
    let sequence_rows = fields
        .iter()
        .filter_map(|f| match f.kind {
            Kind::Sequence { start, end } => {
                Some(u64::try_from(end as i128 - start as i128 + 1).unwrap_or(u64::MAX))
            }
            _ => None,
        })
        .min();
    let rows = match (number_of_rows, sequence_rows) {
        (Some(n), Some(s)) => Some(n.min(s)),
        (n, s) => n.or(s),
    };
    Ok(DatagenConfig { fields, rows, rate })
}

fn parse_field(o: &ConnectorOptions, name: &str, ty: &SqlType) -> Result<FieldGen> {
    let key = |prop: &str| format!("fields.{name}.{prop}");
    let kind = o
        .one_of(&key("kind"), &["random", "sequence"])?
        .unwrap_or("random");
    let not_for = |props: &[&str], what: &str| -> Result<()> {
        for prop in props {
            if o.get(&key(prop)).is_some() {
                return Err(Error::invalid(format!(
                    "option '{}' of {} does not apply to {what}",
                    key(prop),
                    o.describe()
                )));
            }
        }
        Ok(())
    };
    let unsupported = || {
        Error::not_supported(format!(
            "datagen for column `{name}` of type {ty} ({}) is not supported yet",
            o.describe()
        ))
    };
    let int_range = |ty: &SqlType| -> Option<(i64, i64)> {
        Some(match ty {
            SqlType::TinyInt => (i8::MIN.into(), i8::MAX.into()),
            SqlType::SmallInt => (i16::MIN.into(), i16::MAX.into()),
            SqlType::Int => (i32::MIN.into(), i32::MAX.into()),
            SqlType::BigInt => (i64::MIN, i64::MAX),
            _ => return None,
        })
    };
    let int_option = |prop: &str, lo: i64, hi: i64| -> Result<Option<i64>> {
        let k = key(prop);
        match o.get(&k) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
                _ => Err(o.bad_value(
                    &k,
                    v,
                    &format!(
                        "expected an integer between {lo} and {hi} for column `{name}` of type {ty}"
                    ),
                )),
            },
        }
    };
    let null_rate = o.f64(&key("null-rate"))?.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&null_rate) {
        return Err(o.bad_value(
            &key("null-rate"),
            &null_rate.to_string(),
            "expected a number between 0 and 1",
        ));
    }

    let kind = if kind == "sequence" {
        not_for(&["min", "max", "max-past", "length"], "a sequence")?;
        let (lo, hi) = match ty {
            SqlType::Float
            | SqlType::Double
            | SqlType::Decimal { .. }
            | SqlType::Char { .. }
            | SqlType::Varchar { .. }
            | SqlType::String => (i64::MIN, i64::MAX),
            other => int_range(other).ok_or_else(unsupported)?,
        };
        let start = int_option("start", lo, hi)?;
        let end = int_option("end", lo, hi)?;
        let (Some(start), Some(end)) = (start, end) else {
            return Err(Error::invalid(format!(
                "sequence column `{name}` of {} needs options '{}' and '{}'",
                o.describe(),
                key("start"),
                key("end")
            )));
        };
        if start > end {
            return Err(Error::invalid(format!(
                "option '{}' ({start}) of {} is greater than '{}' ({end})",
                key("start"),
                o.describe(),
                key("end")
            )));
        }
        Kind::Sequence { start, end }
    } else {
        not_for(&["start", "end"], "a random column")?;
        match ty {
            SqlType::Boolean => Kind::RandomBool,
            SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt => {
                let (lo, hi) = int_range(ty).ok_or_else(unsupported)?;
                let min = int_option("min", lo, hi)?.unwrap_or(lo);
                let max = int_option("max", lo, hi)?.unwrap_or(hi);
                if min > max {
                    return Err(Error::invalid(format!(
                        "option '{}' of {} is greater than '{}'",
                        key("min"),
                        o.describe(),
                        key("max")
                    )));
                }
                Kind::RandomInt { min, max }
            }
            SqlType::Float | SqlType::Double | SqlType::Decimal { .. } => {
                let (lo, hi) = match ty {
                    SqlType::Float => (0.0, f64::from(f32::MAX)),
                    SqlType::Double => (0.0, f64::MAX),
                    SqlType::Decimal { precision, scale } => {
                        let max = (10f64.powi(i32::from(*precision)) - 1.0)
                            / 10f64.powi(i32::from(*scale));
                        (-max, max)
                    }
                    _ => return Err(unsupported()),
                };
                let min = o.f64(&key("min"))?.unwrap_or(lo);
                let max = o.f64(&key("max"))?.unwrap_or(hi);
                if min > max || !(max - min).is_finite() {
                    return Err(Error::invalid(format!(
                        "options '{}' and '{}' of {} must give a finite range with min <= max",
                        key("min"),
                        key("max"),
                        o.describe()
                    )));
                }
                Kind::RandomFloat { min, max }
            }
            SqlType::Char { .. }
            | SqlType::Varchar { .. }
            | SqlType::String
            | SqlType::Binary { .. }
            | SqlType::Varbinary { .. }
            | SqlType::Bytes => {
                let declared = match ty {
                    SqlType::Char { length }
                    | SqlType::Varchar { length }
                    | SqlType::Binary { length }
                    | SqlType::Varbinary { length } => *length as usize,
                    _ => crate::types::MAX_LENGTH as usize,
                };
                let length = match o.u64(&key("length"))? {
                    Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                    None => DEFAULT_LENGTH.min(declared),
                };
                if length > declared {
                    return Err(o.bad_value(
                        &key("length"),
                        &length.to_string(),
                        &format!("column `{name}` is {ty}"),
                    ));
                }
                if matches!(
                    ty,
                    SqlType::Binary { .. } | SqlType::Varbinary { .. } | SqlType::Bytes
                ) {
                    Kind::RandomBytes { length }
                } else {
                    Kind::RandomString { length }
                }
            }
            SqlType::Date => Kind::RandomDate {
                max_past: o.duration(&key("max-past"))?.unwrap_or_default(),
            },
            SqlType::Timestamp { .. } | SqlType::TimestampLtz { .. } => Kind::RandomTimestamp {
                max_past: o.duration(&key("max-past"))?.unwrap_or_default(),
            },
            _ => return Err(unsupported()),
        }
    };
    if !matches!(kind, Kind::RandomString { .. } | Kind::RandomBytes { .. })
        && o.get(&key("length")).is_some()
    {
        return Err(Error::invalid(format!(
            "option '{}' of {} applies to strings and bytes only",
            key("length"),
            o.describe()
        )));
    }
    if !matches!(kind, Kind::RandomDate { .. } | Kind::RandomTimestamp { .. })
        && o.get(&key("max-past")).is_some()
    {
        return Err(Error::invalid(format!(
            "option '{}' of {} applies to dates and timestamps only",
            key("max-past"),
            o.describe()
        )));
    }
    Ok(FieldGen {
        name: name.to_string(),
        data_type: ty.to_arrow(),
        kind,
        null_rate,
    })
}

/// A datagen table.
#[derive(Debug)]
pub(crate) struct DatagenTable {
    name: String,
    schema: SchemaRef,
    config: DatagenConfig,
}

impl DatagenTable {
    pub(crate) fn try_new(name: &str, def: &TableDef, schema: SchemaRef) -> Result<Self> {
        let config = parse(
            &ConnectorOptions::new(Some(name), "datagen", &def.options),
            def,
        )?;
        Ok(Self {
            name: name.to_string(),
            schema,
            config,
        })
    }
}

#[async_trait::async_trait]
impl TableProvider for DatagenTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let rows = match (self.config.rows, limit) {
            (Some(r), Some(l)) => Some(r.min(l as u64)),
            (r, l) => r.or(l.map(|l| l as u64)),
        };
        let (schema, fields) = match projection {
            Some(p) => (
                Arc::new(self.schema.project(p)?),
                p.iter()
                    .filter_map(|&i| self.config.fields.get(i).cloned())
                    .collect(),
            ),
            None => (Arc::clone(&self.schema), self.config.fields.clone()),
        };
        let Some(rows) = rows else {
            return Ok(Arc::new(DatagenExec::unbounded(
                schema,
                fields,
                self.config.rate,
            )));
        };
        let batches = rows.div_ceil(BATCH_SIZE as u64).max(1);
        let partitions = (state.config().target_partitions().min(MAX_PARTITIONS) as u64)
            .clamp(1, batches) as usize;
        Ok(Arc::new(DatagenExec::new(schema, fields, rows, partitions)))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        _input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(Error::invalid(format!(
            "connector 'datagen' is a source only; cannot write into table `{}`",
            self.name
        ))
        .into())
    }
}

/// Generates a datagen table's rows (see the module documentation).
#[derive(Debug)]
pub struct DatagenExec {
    schema: SchemaRef,
    fields: Arc<Vec<FieldGen>>,
    rows: u64,
    partitions: usize,
    /// Unbounded: rows per second, forever (one partition).
    rate: Option<u64>,
    properties: Arc<PlanProperties>,
}

impl DatagenExec {
    fn new(schema: SchemaRef, fields: Vec<FieldGen>, rows: u64, partitions: usize) -> Self {
        Self::build(schema, fields, rows, partitions, None)
    }

    /// An endless source of `rate` rows per second.
    fn unbounded(schema: SchemaRef, fields: Vec<FieldGen>, rate: u64) -> Self {
        Self::build(schema, fields, u64::MAX, 1, Some(rate.max(1)))
    }

    fn build(
        schema: SchemaRef,
        fields: Vec<FieldGen>,
        rows: u64,
        partitions: usize,
        rate: Option<u64>,
    ) -> Self {
        let boundedness = if rate.is_some() {
            Boundedness::Unbounded {
                requires_infinite_memory: false,
            }
        } else {
            Boundedness::Bounded
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            boundedness,
        );
        Self {
            schema,
            fields: Arc::new(fields),
            rows,
            partitions,
            rate,
            properties: Arc::new(properties),
        }
    }

    /// The rows `[start, end)` of a partition.
    fn range(&self, partition: usize) -> (u64, u64) {
        let n = self.partitions as u128;
        let rows = self.rows as u128;
        let p = partition as u128;
        ((rows * p / n) as u64, (rows * (p + 1) / n) as u64)
    }
}

impl DisplayAs for DatagenExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match self.rate {
            Some(rate) => write!(
                f,
                "DatagenExec: rows-per-second={rate}, unbounded, fields=["
            )?,
            None => write!(
                f,
                "DatagenExec: rows={}, partitions={}, fields=[",
                self.rows, self.partitions
            )?,
        }
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{field}")?;
        }
        write!(f, "]")
    }
}

impl ExecutionPlan for DatagenExec {
    fn name(&self) -> &str {
        "DatagenExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "DatagenExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition >= self.partitions {
            return Err(DataFusionError::Internal(format!(
                "DatagenExec has {} partitions, asked for partition {partition}",
                self.partitions
            )));
        }
        let (start, end) = self.range(partition);
        let state = (start, StdRng::from_rng(&mut rand::rng()));
        let schema = Arc::clone(&self.schema);
        let fields = Arc::clone(&self.fields);
        let rate = self.rate;
        // Paced: about a tenth of a second of rows per batch.
        let chunk = rate.map_or(BATCH_SIZE as u64, |r| (r / 10).clamp(1, BATCH_SIZE as u64));
        let chunk = chunk.min(rows_per_batch(&fields) as u64);
        let started = std::time::Instant::now();
        let stream = futures::stream::unfold(state, move |(next, mut rng)| {
            let schema = Arc::clone(&schema);
            let fields = Arc::clone(&fields);
            async move {
                if next >= end {
                    return None;
                }
                let n = (end - next).min(chunk) as usize;
                if let Some(rate) = rate {
                    // Rows `..next + n` are due at (next + n) / rate seconds after the start.
                    let due =
                        Duration::from_secs_f64((next - start + n as u64) as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let batch = generate_batch(&schema, &fields, next, n, &mut rng);
                Some((batch, (next + n as u64, rng)))
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

/// Rows per batch for these fields: [`BATCH_SIZE`], fewer when long strings or bytes would put
/// more than [`BATCH_BYTES`] in a batch (always at least one row).
fn rows_per_batch(fields: &[FieldGen]) -> usize {
    let widest = fields
        .iter()
        .map(|f| match f.kind {
            // Strings are hex: one byte per character.
            Kind::RandomString { length } | Kind::RandomBytes { length } => length,
            _ => 0,
        })
        .sum::<usize>();
    (BATCH_BYTES / widest.max(1)).clamp(1, BATCH_SIZE)
}

fn generate_batch(
    schema: &SchemaRef,
    fields: &[FieldGen],
    first: u64,
    n: usize,
    rng: &mut StdRng,
) -> DfResult<RecordBatch> {
    let columns = fields
        .iter()
        .map(|f| generate_column(f, first, n, rng))
        .collect::<DfResult<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(n));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// A hex string of `length` characters.
fn hex_string(rng: &mut StdRng, length: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(length);
    // Sixteen hex digits from each random u64.
    while out.len() < length {
        let mut bits: u64 = rng.random();
        for _ in 0..(length - out.len()).min(16) {
            out.push(char::from(HEX[(bits & 15) as usize]));
            bits >>= 4;
        }
    }
    out
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn generate_column(field: &FieldGen, first: u64, n: usize, rng: &mut StdRng) -> DfResult<ArrayRef> {
    let raw: ArrayRef = match &field.kind {
        Kind::Sequence { start, .. } => Arc::new(Int64Array::from_iter_values(
            // Wrapping arithmetic is exact: every value lies in [start, end].
            (0..n as i64).map(|i| start.wrapping_add(first as i64).wrapping_add(i)),
        )),
        Kind::RandomInt { min, max } => Arc::new(Int64Array::from_iter_values(
            (0..n).map(|_| rng.random_range(*min..=*max)),
        )),
        Kind::RandomFloat { min, max } => Arc::new(Float64Array::from_iter_values(
            (0..n).map(|_| min + (max - min) * rng.random::<f64>()),
        )),
        Kind::RandomBool => Arc::new(BooleanArray::from_iter(
            (0..n).map(|_| Some(rng.random::<bool>())),
        )),
        Kind::RandomString { length } => Arc::new(StringArray::from_iter_values(
            (0..n).map(|_| hex_string(rng, *length)),
        )),
        Kind::RandomBytes { length } => {
            let values: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let mut value = vec![0u8; *length];
                    rng.fill(value.as_mut_slice());
                    value
                })
                .collect();
            Arc::new(BinaryArray::from_iter_values(values))
        }
        Kind::RandomDate { max_past } => {
            let today = (now_millis() / 86_400_000) as i32;
            // Capped at about a million days, well inside DATE's range.
            let max_days = (max_past.as_millis() / 86_400_000).min(1_000_000) as i32;
            Arc::new(Date32Array::from_iter_values(
                (0..n).map(|_| today - rng.random_range(0..=max_days)),
            ))
        }
        Kind::RandomTimestamp { max_past } => {
            let now = now_millis();
            // Capped at about a million days, as DATE: far past stays a valid timestamp.
            let max = max_past.as_millis().min(1_000_000 * 86_400_000) as i64;
            Arc::new(TimestampMillisecondArray::from_iter_values(
                (0..n).map(|_| now - rng.random_range(0..=max)),
            ))
        }
    };
    let typed = if raw.data_type() == &field.data_type {
        raw
    } else {
        cast(&raw, &field.data_type)?
    };
    if field.null_rate <= 0.0 {
        return Ok(typed);
    }
    let mask = BooleanArray::from_iter((0..n).map(|_| Some(rng.random_bool(field.null_rate))));
    Ok(nullif(&typed, &mask)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;
    use futures::StreamExt;

    #[tokio::test]
    async fn unbounded_datagen_is_paced_and_never_ends() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let fields = vec![FieldGen {
            name: "v".into(),
            data_type: DataType::Int64,
            kind: Kind::RandomInt { min: 1, max: 9 },
            null_rate: 0.0,
        }];
        let exec = DatagenExec::unbounded(schema, fields, 100);
        assert!(matches!(
            exec.properties().boundedness,
            Boundedness::Unbounded { .. }
        ));
        let started = std::time::Instant::now();
        let mut stream = exec.execute(0, SessionContext::new().task_ctx()).unwrap();
        let mut rows = 0;
        while rows < 30 {
            rows += stream.next().await.unwrap().unwrap().num_rows();
        }
        // 100 rows per second, in batches of 10: 30 rows take about 0.3 s.
        assert_eq!(rows, 30);
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn long_strings_come_in_smaller_batches() {
        let length = 1 << 16;
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let fields = vec![FieldGen {
            name: "s".into(),
            data_type: DataType::Utf8,
            kind: Kind::RandomString { length },
            null_rate: 0.0,
        }];
        let exec = DatagenExec::new(schema, fields, 600, 1);
        let mut stream = exec.execute(0, SessionContext::new().task_ctx()).unwrap();
        let (mut rows, mut batches) = (0, 0);
        while let Some(batch) = stream.next().await {
            let batch = batch.unwrap();
            // 16 MiB of 64 KiB strings: at most 256 rows a batch (not 8192, 512 MiB; with 1 MiB
            // strings that would be 8 GiB, past Arrow's 2 GiB string offsets).
            assert!(batch.num_rows() <= 256, "{}", batch.num_rows());
            batches += 1;
            let col = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            assert!(col.iter().all(|v| v.map(str::len) == Some(length)));
            rows += batch.num_rows();
        }
        assert_eq!(rows, 600);
        assert!(batches >= 3, "{batches}");
        let hex = hex_string(&mut StdRng::seed_from_u64(7), 37);
        assert_eq!(hex.len(), 37);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
    }
}
