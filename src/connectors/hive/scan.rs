//! The physical scan of a Hive table ([`HiveScanExec`]): the leaf of a query plan over a Hive
//! table. The provider (`table`) lists the files to read (after partition pruning) and groups
//! them; each DataFusion partition of this plan reads its files one after another, streaming:
//! Parquet through arrow-rs' async reader over object_store, ORC through `orc-rust`'s async
//! reader, text through [`super::text::TextDecoder`] over the object's byte stream. Batches are
//! fitted to the table's types (`adapt`) and the partition values are added as constant columns.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use datafusion::parquet::basic::Type as PhysicalType;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, Statistics,
    StatisticsArgs,
};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::HiveFormat;
use super::adapt::adapt_batch;
use super::text::{TextDecoder, TextOptions};
use crate::connectors::read_guard::{guarded, guarded_stream};
use crate::error::{Error, Result};

/// One data file to read, with the values of its partition's keys.
#[derive(Debug, Clone)]
pub(crate) struct ScanFile {
    pub store: Arc<dyn ObjectStore>,
    pub path: ObjectPath,
    pub size: u64,
    /// The partition key values (typed), in key order; empty for unpartitioned tables.
    pub partition: Arc<Vec<ScalarValue>>,
}

/// How the partitions of a partitioned table were chosen, for EXPLAIN.
#[derive(Debug, Clone)]
pub(crate) struct PartitionStats {
    /// Partitions read after pruning.
    pub read: usize,
    /// Partitions the metastore returned (all of them when no filter was pushed to it).
    pub listed: usize,
    /// The filter sent to the metastore, if any.
    pub metastore_filter: Option<String>,
}

/// What every file reader of a scan shares.
#[derive(Debug)]
pub(crate) struct ScanContext {
    pub table: String,
    pub format: HiveFormat,
    /// The table's columns (data columns, then partition keys).
    pub table_schema: SchemaRef,
    /// How many of `table_schema`'s columns are data columns.
    pub data_columns: usize,
    /// The columns produced, as indices into `table_schema`.
    pub projection: Vec<usize>,
    pub text: Option<Arc<TextOptions>>,
    pub batch_size: usize,
    /// Each partition of the scan stops reading files once it produced this many rows (a hint:
    /// the plan still limits above the scan).
    pub limit: Option<usize>,
}

impl ScanContext {
    /// The data columns read from the files (the projected ones, in projection order), with their
    /// indices in the table schema.
    fn read_columns(&self) -> (SchemaRef, Vec<usize>) {
        let indices: Vec<usize> = self
            .projection
            .iter()
            .copied()
            .filter(|&i| i < self.data_columns)
            .collect();
        let fields: Vec<_> = indices
            .iter()
            .map(|&i| Arc::clone(&self.table_schema.fields()[i]))
            .collect();
        (Arc::new(Schema::new(fields)), indices)
    }

    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.projection
                .iter()
                .map(|&i| Arc::clone(&self.table_schema.fields()[i]))
                .collect::<Vec<_>>(),
        ))
    }

    /// The output batch of a file's batch (already fitted to the read columns).
    fn assemble(
        &self,
        data: &RecordBatch,
        partition: &[ScalarValue],
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let rows = data.num_rows();
        let mut next_data = 0;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.len());
        for &i in &self.projection {
            if i < self.data_columns {
                columns.push(Arc::clone(data.column(next_data)));
                next_data += 1;
            } else {
                let value = partition
                    .get(i - self.data_columns)
                    .ok_or_else(|| Error::internal(format!("partition value {i} missing")))?;
                columns.push(value.to_array_of_size(rows)?);
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &options,
        )?)
    }

    /// The batches of one file, in the output schema.
    async fn read_file(
        self: Arc<Self>,
        file: ScanFile,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let (read_schema, indices) = self.read_columns();
        let out_schema = self.output_schema();
        let location = file.path.to_string();
        // A corrupt file must give an error naming it, also when a decoder panics on it.
        let raw: BoxStream<'static, Result<RecordBatch>> = guarded(&location, async {
            match self.format {
                HiveFormat::Parquet => self.parquet(&file, &read_schema).await,
                HiveFormat::Orc => self.orc(&file, &read_schema, &indices).await,
                HiveFormat::Text => self.text(&file, &read_schema, indices).await,
            }
        })
        .await
        .map_err(|e| e.context(format!("in file '{location}'")))?;
        let raw = guarded_stream(location.clone(), raw);
        let ctx = Arc::clone(&self);
        let partition = Arc::clone(&file.partition);
        Ok(raw
            .map(move |batch| {
                let batch = batch.and_then(|b| adapt_batch(&b, &read_schema))?;
                ctx.assemble(&batch, &partition, &out_schema)
            })
            .map_err(move |e| e.context(format!("in file '{location}'")))
            .boxed())
    }

    async fn parquet(
        &self,
        file: &ScanFile,
        read_schema: &SchemaRef,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let mut reader = ObjectFileReader {
            store: Arc::clone(&file.store),
            path: file.path.clone(),
            size: file.size,
        };
        let pq = |e: ParquetError| Error::external(format!("Parquet: {e}"));
        let mut meta = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(pq)?;
        // Hive's INT96 timestamps: read as microseconds rather than arrow-rs' default of
        // nanoseconds, which cannot hold years before 1677 or after 2262.
        let roots = meta.parquet_schema().root_schema().get_fields();
        let int96: Vec<usize> = roots
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_primitive() && t.get_physical_type() == PhysicalType::INT96)
            .map(|(i, _)| i)
            .collect();
        if !int96.is_empty() {
            let schema = meta.schema();
            let fields: Vec<_> = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if int96.contains(&i) {
                        Arc::new(
                            Field::clone(f)
                                .with_data_type(DataType::Timestamp(TimeUnit::Microsecond, None)),
                        )
                    } else {
                        Arc::clone(f)
                    }
                })
                .collect();
            let hint = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
            meta = ArrowReaderMetadata::try_new(
                Arc::clone(meta.metadata()),
                ArrowReaderOptions::new().with_schema(hint),
            )
            .map_err(pq)?;
        }
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta);
        let roots: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| has_field(read_schema, f.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let stream = builder
            .with_projection(mask)
            .with_batch_size(self.batch_size)
            .build()
            .map_err(|e| Error::external(format!("Parquet: {e}")))?;
        Ok(stream
            .map_err(|e| Error::external(format!("Parquet: {e}")))
            .boxed())
    }

    async fn orc(
        &self,
        file: &ScanFile,
        read_schema: &SchemaRef,
        indices: &[usize],
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let reader = ObjectFileReader {
            store: Arc::clone(&file.store),
            path: file.path.clone(),
            size: file.size,
        };
        let builder = orc_rust::arrow_reader::ArrowReaderBuilder::try_new_async(reader)
            .await
            .map_err(|e| Error::external(format!("ORC: {e}")))?;
        let root = builder.file_metadata().root_data_type().clone();
        let names: Vec<String> = root
            .children()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        // Files of old Hive writers name their columns `_col0`, `_col1`, ...: match by position.
        let positional = !names.is_empty() && names.iter().all(|n| n.starts_with("_col"));
        let (selected, rename): (Vec<String>, Vec<(String, String)>) = if positional {
            let mut sel = Vec::new();
            let mut ren = Vec::new();
            for (&i, field) in indices.iter().zip(read_schema.fields()) {
                if let Some(n) = names.get(i) {
                    sel.push(n.clone());
                    ren.push((n.clone(), field.name().clone()));
                }
            }
            (sel, ren)
        } else {
            (
                names
                    .iter()
                    .filter(|n| has_field(read_schema, n))
                    .cloned()
                    .collect(),
                Vec::new(),
            )
        };
        let mask = orc_rust::projection::ProjectionMask::named_roots(&root, &selected);
        let stream = builder
            .with_projection(mask)
            .with_batch_size(self.batch_size)
            .build_async();
        Ok(stream
            .map(move |b| {
                let b = b.map_err(|e| Error::external(format!("ORC: {e}")))?;
                if rename.is_empty() {
                    return Ok(b);
                }
                let fields: Vec<_> = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| {
                        let name = rename
                            .iter()
                            .find(|(from, _)| from == f.name())
                            .map_or_else(|| f.name().clone(), |(_, to)| to.clone());
                        Arc::new(f.as_ref().clone().with_name(name))
                    })
                    .collect();
                Ok(RecordBatch::try_new_with_options(
                    Arc::new(Schema::new(fields)),
                    b.columns().to_vec(),
                    &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
                )?)
            })
            .boxed())
    }

    async fn text(
        &self,
        file: &ScanFile,
        read_schema: &SchemaRef,
        indices: Vec<usize>,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let name = file
            .path
            .filename()
            .unwrap_or_default()
            .to_ascii_lowercase();
        for ext in [".gz", ".deflate", ".bz2", ".snappy", ".lz4", ".zst", ".lzo"] {
            if name.ends_with(ext) {
                return Err(Error::not_supported(format!(
                    "compressed text files ('{}') are not supported yet",
                    file.path
                )));
            }
        }
        let options = self
            .text
            .clone()
            .ok_or_else(|| Error::internal("text scan without text options"))?;
        let decoder = TextDecoder::new(options, Arc::clone(read_schema), indices);
        let bytes = file
            .store
            .get(&file.path)
            .await
            .map_err(|e| Error::external(format!("cannot read '{}': {e}", file.path)))?
            .into_stream()
            .map_err(|e| Error::external(e.to_string()))
            .boxed();
        let state = LineState {
            bytes,
            buf: Vec::new(),
            scanned: 0,
            lines: 0,
            eof: false,
            decoder,
            batch_size: self.batch_size.max(1),
        };
        Ok(futures::stream::try_unfold(state, |mut s| async move {
            match s.next_batch().await? {
                Some(b) => Ok(Some((b, s))),
                None => Ok(None),
            }
        })
        .boxed())
    }
}

fn has_field(schema: &SchemaRef, name: &str) -> bool {
    schema
        .fields()
        .iter()
        .any(|f| f.name().eq_ignore_ascii_case(name))
}

/// Reading a text file's lines in batches.
struct LineState {
    bytes: BoxStream<'static, Result<Bytes>>,
    buf: Vec<u8>,
    /// How far `buf` was searched for line ends.
    scanned: usize,
    /// Complete lines in `buf[..scanned]`.
    lines: usize,
    eof: bool,
    decoder: TextDecoder,
    batch_size: usize,
}

impl LineState {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while self.lines < self.batch_size && !self.eof {
            match self.bytes.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    self.buf.extend_from_slice(&chunk);
                    self.lines += self.buf[self.scanned..]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count();
                    self.scanned = self.buf.len();
                }
                None => self.eof = true,
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        // Take up to batch_size lines (and, at the end, a last line without terminator).
        let mut ranges: Vec<Range<usize>> = Vec::new();
        let mut start = 0;
        for (i, &b) in self.buf.iter().enumerate() {
            if ranges.len() == self.batch_size {
                break;
            }
            if b == b'\n' {
                ranges.push(start..i);
                start = i + 1;
            }
        }
        if self.eof && ranges.len() < self.batch_size && start < self.buf.len() {
            ranges.push(start..self.buf.len());
            start = self.buf.len();
        }
        let lines: Vec<&[u8]> = ranges
            .iter()
            .map(|r| {
                let line = &self.buf[r.clone()];
                line.strip_suffix(b"\r").unwrap_or(line)
            })
            .collect();
        let batch = self.decoder.decode(&lines)?;
        let taken = ranges.len();
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        self.lines = self.lines.saturating_sub(taken);
        if taken == 0 {
            return Ok(None);
        }
        Ok(Some(batch))
    }
}

/// A data file in an object store, as the Parquet and ORC readers fetch it (byte ranges).
struct ObjectFileReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
}

fn parquet_error(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ParquetError>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(parquet_error)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, Result<Vec<Bytes>, ParquetError>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(parquet_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>, ParquetError>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl orc_rust::reader::AsyncChunkReader for ObjectFileReader {
    fn len(&mut self) -> BoxFuture<'_, std::io::Result<u64>> {
        let size = self.size;
        async move { Ok(size) }.boxed()
    }

    fn get_bytes(
        &mut self,
        offset_from_start: u64,
        length: u64,
    ) -> BoxFuture<'_, std::io::Result<Bytes>> {
        // orc-rust may ask for more than the file holds (its first read of the tail of a small
        // file); object stores refuse ranges past the end.
        let end = offset_from_start.saturating_add(length).min(self.size);
        let range = offset_from_start.min(end)..end;
        async move {
            if range.is_empty() {
                return Ok(Bytes::new());
            }
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(std::io::Error::other)
        }
        .boxed()
    }
}

/// The leaf scan of a Hive table (see the module documentation).
#[derive(Debug)]
pub(crate) struct HiveScanExec {
    ctx: Arc<ScanContext>,
    groups: Vec<Vec<ScanFile>>,
    files: usize,
    partitions: Option<PartitionStats>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl HiveScanExec {
    pub(crate) fn new(
        ctx: ScanContext,
        groups: Vec<Vec<ScanFile>>,
        partitions: Option<PartitionStats>,
    ) -> Self {
        let schema = ctx.output_schema();
        let files = groups.iter().map(Vec::len).sum();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(groups.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            ctx: Arc::new(ctx),
            groups,
            files,
            partitions,
            schema,
            properties,
        }
    }
}

impl DisplayAs for HiveScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let format = match self.ctx.format {
            HiveFormat::Parquet => "parquet",
            HiveFormat::Orc => "orc",
            HiveFormat::Text => "text",
        };
        write!(f, "HiveScan: {} format={format}", self.ctx.table)?;
        if let Some(p) = &self.partitions {
            write!(f, " partitions={}/{}", p.read, p.listed)?;
        }
        write!(f, " files={}", self.files)?;
        if let Some(limit) = self.ctx.limit {
            write!(f, " limit={limit}")?;
        }
        if let Some(filter) = self
            .partitions
            .as_ref()
            .and_then(|p| p.metastore_filter.as_ref())
        {
            write!(f, " metastore_filter=[{filter}]")?;
        }
        let names: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(f, " projection=[{}]", names.join(", "))
    }
}

impl ExecutionPlan for HiveScanExec {
    fn name(&self) -> &str {
        "HiveScanExec"
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
                "HiveScanExec has no children".into(),
            ))
        }
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        // The files' sizes on disk, as an inexact size of the scan: enough for join selection to
        // broadcast a small table and to build on the smaller side. Row counts are not known
        // without reading footers (or trusting the Metastore's `numRows`, often stale).
        let files: Vec<&ScanFile> = match args.partition() {
            Some(p) => self
                .groups
                .get(p)
                .map(|g| g.iter().collect())
                .unwrap_or_default(),
            None => self.groups.iter().flatten().collect(),
        };
        let bytes = files.iter().map(|f| f.size).fold(0u64, u64::saturating_add);
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.total_byte_size = Precision::Inexact(usize::try_from(bytes).unwrap_or(usize::MAX));
        Ok(Arc::new(stats))
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let files = match self.groups.get(partition) {
            Some(files) => files.clone(),
            None if self.groups.is_empty() && partition == 0 => Vec::new(),
            None => {
                return Err(DataFusionError::Internal(format!(
                    "HiveScanExec has {} partitions, asked for partition {partition}",
                    self.groups.len()
                )));
            }
        };
        let ctx = Arc::clone(&self.ctx);
        let table = self.ctx.table.clone();
        let limit = self.ctx.limit.unwrap_or(usize::MAX);
        let stream = futures::stream::iter(files)
            .then(move |file| Arc::clone(&ctx).read_file(file))
            .try_flatten()
            .scan(0usize, move |seen, batch| {
                let done = *seen >= limit;
                if let Ok(b) = &batch {
                    *seen = seen.saturating_add(b.num_rows());
                }
                futures::future::ready((!done).then_some(batch))
            })
            .map_err(move |e| {
                DataFusionError::from(e.context(format!("while reading Hive table {table}")))
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}
