//! The write side of a Hive table ([`HiveSink`]): the DataFusion `DataSink` behind
//! `INSERT INTO` / `INSERT OVERWRITE [PARTITION (...)]` on a Hive table.
//!
//! Rows are split by their partition-key values into Hive's directories `k1=v1/k2=v2` (values
//! escaped as Hive's `FileUtils.escapePathName` does; NULL and empty values go to
//! `__HIVE_DEFAULT_PARTITION__`); the partition keys are not stored in the files. Each partition's
//! rows are encoded (Parquet, ORC or LazySimpleSerDe text) and uploaded as complete files, rolling
//! past 128 MiB, into a hidden staging directory `<table>/.weir-staging-<uuid>/` (readers skip
//! names starting with `.`). Only when every file is complete are they moved into place (into an
//! existing partition's own location when the metastore has it), then INSERT OVERWRITE deletes the
//! files they replace (the whole table's when unpartitioned, else those of the partitions that
//! received rows: dynamic overwrite), then the new partitions are registered with
//! `HiveMetastoreAccess::add_partitions`. The staging directory is removed in every case (a drop
//! guard covers errors and cancellation), so a failed write leaves the table as it was.
//!
//! Parquet timestamps are written as INT64 microseconds adjusted to UTC (what Spark's reader,
//! used for Hive Parquet tables by default, reads as `timestamp`). The ORC writer (`orc-rust`)
//! writes primitive columns only: a table with decimal, array, map or struct columns gives a
//! not-supported error before anything is written.
//!
//! Checked by hand with Spark 4.3.0 (the Hive peer's PySpark) over partitioned tables written
//! here: with Spark's defaults (`spark.sql.hive.convertMetastoreParquet/Orc=true`) it reads the
//! Parquet, ORC and text tables with every value intact (nested columns, `x%2Fy%3Dz` and
//! `__HIVE_DEFAULT_PARTITION__` directories included); Hive's own SerDe reader
//! (`convertMetastore*=false`) reads the text tables, but not the Parquet files (Hive 2.3 reads
//! only INT96 timestamps) nor the ORC files (Hive 2.3's split generation fails on them).
//!
//! Each file is encoded in memory before it is uploaded (up to the 128 MiB roll size).

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, RecordBatch, RecordBatchOptions, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, GzipLevel, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::prune::DEFAULT_PARTITION;
use super::table::{data_schema, join_raw, list_data_files, parse_location};
use super::text::{TextOptions, encode_batch};
use super::{HiveFormat, HiveMetastoreAccess, HivePartition, HiveTableDesc};
use crate::connectors::file_sink::escape_path_name;
use crate::error::{Error, Result};

/// Files roll to a new one past this encoded size.
const ROLL_BYTES: usize = 128 * 1024 * 1024;

/// Writes a Hive table's rows (see the module documentation).
#[derive(Debug)]
pub(crate) struct HiveSink {
    desc: HiveTableDesc,
    access: Arc<dyn HiveMetastoreAccess>,
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    text: Option<Arc<TextOptions>>,
    overwrite: bool,
    data_schema: SchemaRef,
    /// The schema files are written with (Parquet: timestamps adjusted to UTC).
    file_schema: SchemaRef,
    parquet_compression: Compression,
    orc_compression: Option<orc_rust::compression::CompressionType>,
}

impl HiveSink {
    pub(crate) fn try_new(
        desc: HiveTableDesc,
        access: Arc<dyn HiveMetastoreAccess>,
        store: Arc<dyn ObjectStore>,
        root: ObjectPath,
        text: Option<Arc<TextOptions>>,
        overwrite: bool,
    ) -> Result<Self> {
        let data_schema = data_schema(&desc);
        let mut file_schema = Arc::clone(&data_schema);
        let mut parquet_compression = Compression::SNAPPY;
        let mut orc_compression = Some(orc_rust::compression::CompressionType::Zlib);
        match desc.format {
            HiveFormat::Parquet => {
                file_schema = Arc::new(Schema::new(
                    data_schema
                        .fields()
                        .iter()
                        .map(|f| match f.data_type() {
                            DataType::Timestamp(_, _) => Field::clone(f).with_data_type(
                                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                            ),
                            _ => Field::clone(f),
                        })
                        .collect::<Vec<_>>(),
                ));
                if let Some(c) = desc.table_params.get("parquet.compression") {
                    parquet_compression = match c.to_ascii_uppercase().as_str() {
                        "SNAPPY" => Compression::SNAPPY,
                        "GZIP" => Compression::GZIP(GzipLevel::default()),
                        "ZSTD" => Compression::ZSTD(ZstdLevel::default()),
                        "LZ4" | "LZ4_RAW" => Compression::LZ4_RAW,
                        "UNCOMPRESSED" | "NONE" => Compression::UNCOMPRESSED,
                        other => {
                            return Err(Error::not_supported(format!(
                                "Hive table {}: parquet.compression '{other}' is not supported \
                                 yet (SNAPPY, GZIP, ZSTD, LZ4, UNCOMPRESSED)",
                                desc.name
                            )));
                        }
                    };
                }
            }
            HiveFormat::Orc => {
                for f in data_schema.fields() {
                    let ok = matches!(
                        f.data_type(),
                        DataType::Boolean
                            | DataType::Int8
                            | DataType::Int16
                            | DataType::Int32
                            | DataType::Int64
                            | DataType::Float32
                            | DataType::Float64
                            | DataType::Utf8
                            | DataType::Binary
                            | DataType::Date32
                            | DataType::Timestamp(_, None)
                    );
                    if !ok {
                        return Err(Error::not_supported(format!(
                            "writing ORC Hive table {}: column `{}` of type {} cannot be written \
                             yet (the ORC writer handles primitive columns only, no decimal, \
                             array, map or struct)",
                            desc.name,
                            f.name(),
                            f.data_type()
                        )));
                    }
                }
                if let Some(c) = desc.table_params.get("orc.compress") {
                    use orc_rust::compression::CompressionType as C;
                    orc_compression = match c.to_ascii_uppercase().as_str() {
                        "ZLIB" => Some(C::Zlib),
                        "SNAPPY" => Some(C::Snappy),
                        "ZSTD" => Some(C::Zstd),
                        "LZ4" => Some(C::Lz4),
                        "NONE" => None,
                        other => {
                            return Err(Error::not_supported(format!(
                                "Hive table {}: orc.compress '{other}' is not supported yet \
                                 (ZLIB, SNAPPY, ZSTD, LZ4, NONE)",
                                desc.name
                            )));
                        }
                    };
                }
            }
            HiveFormat::Text => {}
        }
        Ok(Self {
            desc,
            access,
            store,
            root,
            text,
            overwrite,
            data_schema,
            file_schema,
            parquet_compression,
            orc_compression,
        })
    }

    fn data_columns(&self) -> usize {
        self.data_schema.fields().len()
    }

    async fn write(&self, mut data: SendableRecordBatchStream) -> Result<u64> {
        let job = uuid::Uuid::new_v4().simple().to_string();
        let staging = StagingGuard::new(
            Arc::clone(&self.store),
            &self.root,
            &self.desc.location,
            &format!(".weir-staging-{job}"),
        );
        // Open files (not held by reference across awaits) and, apart, what was written where.
        let mut open: HashMap<String, FileWriter> = HashMap::new();
        let mut parts: HashMap<String, PartFiles> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut rows = 0u64;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            rows += batch.num_rows() as u64;
            for (dir, values, part) in self.split(&batch)? {
                if !parts.contains_key(&dir) {
                    order.push(dir.clone());
                    parts.insert(
                        dir.clone(),
                        PartFiles {
                            values,
                            staged: Vec::new(),
                        },
                    );
                }
                let file = match open.remove(&dir) {
                    Some(f) => f,
                    None => self.open()?,
                };
                let file = file.write(part)?;
                if file.size() >= ROLL_BYTES {
                    let bytes = file.finish(self)?;
                    self.stage(&staging.prefix, &job, &dir, &mut parts, bytes)
                        .await?;
                } else {
                    open.insert(dir, file);
                }
            }
        }
        for dir in &order {
            if let Some(file) = open.remove(dir) {
                let bytes = file.finish(self)?;
                self.stage(&staging.prefix, &job, dir, &mut parts, bytes)
                    .await?;
            }
        }
        self.commit(&staging.prefix, &order, &parts).await?;
        drop(staging);
        Ok(rows)
    }

    /// Uploads a complete file of partition directory `dir` to the staging directory.
    async fn stage(
        &self,
        staging: &ObjectPath,
        job: &str,
        dir: &str,
        parts: &mut HashMap<String, PartFiles>,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let Some(part) = parts.get_mut(dir) else {
            return Err(Error::internal(format!("no partition entry for '{dir}'")));
        };
        let name = self.file_name(job, part.staged.len());
        self.upload(&join_raw(staging, &format!("{dir}/{name}"))?, bytes)
            .await?;
        part.staged.push(name);
        Ok(())
    }

    fn file_name(&self, job: &str, n: usize) -> String {
        let ext = match self.desc.format {
            HiveFormat::Parquet => ".parquet",
            HiveFormat::Orc => ".orc",
            HiveFormat::Text => "",
        };
        format!("part-{n:05}-{job}{ext}")
    }

    async fn upload(&self, path: &ObjectPath, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(|e| Error::external(format!("cannot write '{path}': {e}")))?;
        Ok(())
    }

    fn open(&self) -> Result<FileWriter> {
        Ok(match self.desc.format {
            HiveFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(self.parquet_compression)
                    .build();
                FileWriter::Parquet(Box::new(
                    ArrowWriter::try_new(Vec::new(), Arc::clone(&self.file_schema), Some(props))
                        .map_err(|e| Error::external(format!("Parquet: {e}")))?,
                ))
            }
            HiveFormat::Orc => {
                // Encoded when the file is complete (the ORC writer cannot cross an await).
                FileWriter::Orc(Vec::new(), 0)
            }
            HiveFormat::Text => {
                let o = self
                    .text
                    .clone()
                    .ok_or_else(|| Error::internal("text sink without text options"))?;
                FileWriter::Text(Vec::new(), o)
            }
        })
    }

    /// Splits a batch of the table's columns into (directory, partition values, data batch).
    fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, Vec<String>, RecordBatch)>> {
        let n = self.data_columns();
        let mut columns = batch.columns()[..n].to_vec();
        for (c, f) in columns.iter_mut().zip(self.file_schema.fields()) {
            if c.data_type() != f.data_type() {
                *c = cast(c, f.data_type())?;
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let data =
            RecordBatch::try_new_with_options(Arc::clone(&self.file_schema), columns, &options)?;
        if self.desc.partition_key_count == 0 {
            return Ok(vec![(String::new(), Vec::new(), data)]);
        }
        let format = FormatOptions::default();
        let keys = &self.desc.schema.fields()[n..];
        let formatters = batch.columns()[n..]
            .iter()
            .map(|a| Ok((a, ArrayFormatter::try_new(a.as_ref(), &format)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut groups: Vec<(String, Vec<String>, Vec<u32>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in 0..batch.num_rows() {
            let mut dir = String::new();
            let mut values = Vec::with_capacity(keys.len());
            for (key, (array, formatter)) in keys.iter().zip(&formatters) {
                let value = if array.is_null(row) {
                    String::new()
                } else {
                    formatter.value(row).to_string()
                };
                let value = if value.is_empty() {
                    DEFAULT_PARTITION.to_string()
                } else {
                    value
                };
                if !dir.is_empty() {
                    dir.push('/');
                }
                dir.push_str(&escape_path_name(&key.name().to_ascii_lowercase()));
                dir.push('=');
                dir.push_str(&escape_path_name(&value));
                values.push(value);
            }
            let row = u32::try_from(row).map_err(|_| Error::internal("batch too large"))?;
            match index.get(&dir) {
                Some(&g) => groups[g].2.push(row),
                None => {
                    index.insert(dir.clone(), groups.len());
                    groups.push((dir, values, vec![row]));
                }
            }
        }
        groups
            .into_iter()
            .map(|(dir, values, rows)| {
                Ok((
                    dir,
                    values,
                    take_record_batch(&data, &UInt32Array::from(rows))?,
                ))
            })
            .collect()
    }

    /// Moves the staged files into place, deletes replaced files (OVERWRITE), registers new
    /// partitions.
    async fn commit(
        &self,
        staging: &ObjectPath,
        order: &[String],
        parts: &HashMap<String, PartFiles>,
    ) -> Result<()> {
        let partitioned = self.desc.partition_key_count > 0;
        // Where each written directory's files go, and which partitions are new.
        let existing: HashMap<Vec<String>, String> = if partitioned && !order.is_empty() {
            self.access
                .list_partitions(None)
                .await?
                .into_iter()
                .map(|p| (p.values, p.location))
                .collect()
        } else {
            HashMap::new()
        };
        let mut targets: Vec<(String, ObjectPath)> = Vec::new();
        let mut new_partitions = Vec::new();
        for dir in order {
            let Some(w) = parts.get(dir) else { continue };
            let target = if partitioned {
                match existing.get(&w.values) {
                    Some(loc) => parse_location(loc)?.path,
                    None => {
                        new_partitions.push(HivePartition {
                            values: w.values.clone(),
                            location: format!("{}/{dir}", self.desc.location.trim_end_matches('/')),
                        });
                        join_raw(&self.root, dir)?
                    }
                }
            } else {
                self.root.clone()
            };
            targets.push((dir.clone(), target));
        }
        let mut old = Vec::new();
        if self.overwrite {
            if partitioned {
                for (_, target) in &targets {
                    old.extend(list_data_files(&self.store, target).await?);
                }
            } else {
                old = list_data_files(&self.store, &self.root).await?;
            }
        }
        let mut moved: Vec<ObjectPath> = Vec::new();
        for (dir, target) in &targets {
            let Some(w) = parts.get(dir) else { continue };
            for name in &w.staged {
                let from = join_raw(staging, &format!("{dir}/{name}"))?;
                let to = join_raw(target, name)?;
                if let Err(e) = self.store.rename(&from, &to).await {
                    for path in &moved {
                        let _ = self.store.delete(path).await;
                    }
                    return Err(Error::external(format!(
                        "cannot move '{from}' to '{to}': {e}"
                    )));
                }
                moved.push(to);
            }
        }
        for (path, _) in old {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(Error::external(format!(
                        "cannot delete replaced file '{path}': {e}"
                    )));
                }
            }
        }
        if !new_partitions.is_empty() {
            self.access
                .add_partitions(new_partitions)
                .await
                .map_err(|e| e.context("while registering the written partitions"))?;
        }
        Ok(())
    }
}

/// A partition directory written to: its key values and its files in the staging directory.
struct PartFiles {
    values: Vec<String>,
    staged: Vec<String>,
}

/// An in-memory buffer shared with the ORC writer (which keeps its sink until closed).
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *guard)
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One file being encoded.
enum FileWriter {
    Parquet(Box<ArrowWriter<Vec<u8>>>),
    /// The batches of an ORC file and their in-memory size, encoded by `finish`.
    Orc(Vec<RecordBatch>, usize),
    Text(Vec<u8>, Arc<TextOptions>),
}

impl FileWriter {
    fn write(mut self, batch: RecordBatch) -> Result<Self> {
        match &mut self {
            FileWriter::Parquet(w) => w
                .write(&batch)
                .map_err(|e| Error::external(format!("Parquet: {e}")))?,
            FileWriter::Orc(batches, size) => {
                *size += batch.get_array_memory_size();
                batches.push(batch);
            }
            FileWriter::Text(buf, o) => encode_batch(&batch, o, buf)?,
        }
        Ok(self)
    }

    fn size(&self) -> usize {
        match self {
            FileWriter::Parquet(w) => w.bytes_written() + w.in_progress_size(),
            FileWriter::Orc(_, size) => *size,
            FileWriter::Text(buf, _) => buf.len(),
        }
    }

    fn finish(self, sink: &HiveSink) -> Result<Vec<u8>> {
        match self {
            FileWriter::Parquet(w) => w
                .into_inner()
                .map_err(|e| Error::external(format!("Parquet: {e}"))),
            FileWriter::Orc(batches, _) => {
                let buf = SharedBuf::default();
                let mut b = orc_rust::arrow_writer::ArrowWriterBuilder::new(
                    buf.clone(),
                    Arc::clone(&sink.file_schema),
                );
                if let Some(c) = sink.orc_compression {
                    b = b.with_compression(c);
                }
                let orc = |e: orc_rust::error::OrcError| Error::external(format!("ORC: {e}"));
                let mut w = b.try_build().map_err(orc)?;
                for batch in &batches {
                    w.write(batch).map_err(orc)?;
                }
                w.close().map_err(orc)?;
                Ok(buf.take())
            }
            FileWriter::Text(buf, _) => Ok(buf),
        }
    }
}

/// Removes a write's staging directory when dropped (success, error or cancellation).
struct StagingGuard {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The directory on the local file system, for `file:` tables (object_store leaves empty
    /// directories behind).
    local: Option<std::path::PathBuf>,
}

impl StagingGuard {
    fn new(
        store: Arc<dyn ObjectStore>,
        root: &ObjectPath,
        table_location: &str,
        name: &str,
    ) -> Self {
        let prefix = root.clone().join(name);
        let local = parse_location(table_location)
            .ok()
            .filter(|l| l.store_url == "file://")
            .map(|l| std::path::Path::new(&l.raw_path).join(name));
        Self {
            store,
            prefix,
            local,
        }
    }
}

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if let Some(dir) = &self.local {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        let store = Arc::clone(&self.store);
        let prefix = self.prefix.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let locations = store
                    .list(Some(&prefix))
                    .filter_map(|m| async move { m.ok().map(|m| Ok(m.location)) })
                    .boxed();
                let _ = store.delete_stream(locations).collect::<Vec<_>>().await;
            });
        }
    }
}

impl DisplayAs for HiveSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "HiveSink: table={}, location={}, mode={}",
            self.desc.name,
            self.desc.location,
            if self.overwrite {
                "overwrite"
            } else {
                "append"
            }
        )
    }
}

#[async_trait::async_trait]
impl DataSink for HiveSink {
    fn schema(&self) -> &SchemaRef {
        &self.desc.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        self.write(data).await.map_err(|e| {
            DataFusionError::from(e.context(format!("while writing Hive table {}", self.desc.name)))
        })
    }
}
