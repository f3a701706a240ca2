//! The write side of the `filesystem` connector: a DataFusion [`DataSink`] behind
//! `INSERT INTO` / `INSERT OVERWRITE` on a filesystem table.
//!
//! The input is streamed and split by partition values into Hive-style directories
//! (`col=value/`, NULL and empty values in `partition.default-name`, unsafe characters escaped as
//! `%XX` as Hive does); partition columns are not stored in the data files. Files are written with
//! Arrow's writers into a staging directory `<path>/_weir_staging_<uuid>/`, rolling to a new file
//! past `sink.rolling-policy.file-size`. Only once every row is written are the files renamed into
//! place; then INSERT OVERWRITE deletes the old files (the whole table's when unpartitioned, those
//! of the partitions that received rows when partitioned: Flink's dynamic overwrite). The staging
//! directory is removed in every case, by a drop guard when the statement fails or is cancelled,
//! so no partial file ever becomes visible.
//!
//! `debezium-json` tables are written as changelogs (`super::debezium::Encoder`): batch `INSERT`
//! writes `c` events; the streaming writer takes updates and writes every change, in order.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

use super::debezium::Encoder;
use super::filesystem::{Format, FsConfig, Layout, is_hidden};
use crate::error::{Error, Result};
use crate::stream::changes::Changes;

/// Writes a filesystem table's rows (see the module documentation).
#[derive(Debug)]
pub(crate) struct FileSink {
    table: String,
    config: Arc<FsConfig>,
    layout: Layout,
    overwrite: bool,
}

impl FileSink {
    pub(crate) fn new(
        table: String,
        config: Arc<FsConfig>,
        layout: Layout,
        overwrite: bool,
    ) -> Self {
        Self {
            table,
            config,
            layout,
            overwrite,
        }
    }

    fn describe(&self) -> String {
        format!("table `{}` (connector 'filesystem')", self.table)
    }

    async fn write(&self, mut data: SendableRecordBatchStream) -> Result<u64> {
        let root = &self.config.path;
        match std::fs::metadata(root) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::invalid(format!(
                    "cannot write to {}: path '{}' is a file, not a directory",
                    self.describe(),
                    root.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(root)
                .map_err(|e| {
                    Error::io(format!("cannot create directory '{}'", root.display()), e)
                })?,
            Err(e) => return Err(Error::io(format!("cannot access '{}'", root.display()), e)),
        }
        let job = uuid::Uuid::new_v4().simple().to_string();
        // Declared before the writers so it is dropped (and the directory removed) after them.
        let staging = StagingDir::create(root.join(format!("_weir_staging_{job}")))?;
        let mut writers: HashMap<String, RollingWriter> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut rows = 0u64;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            rows += batch.num_rows() as u64;
            for (dir, part) in self.split(&batch)? {
                let writer = match writers.get_mut(&dir) {
                    Some(w) => w,
                    None => {
                        order.push(dir.clone());
                        writers.entry(dir.clone()).or_insert(RollingWriter::new(
                            Staging::Dir(staging.path.join(&dir)),
                            root.join(&dir),
                            job.clone(),
                            Arc::clone(&self.config),
                            Arc::clone(&self.layout.data_schema),
                        ))
                    }
                };
                writer.write(&Changes::inserts(part))?;
            }
        }
        let mut files = Vec::new();
        for dir in &order {
            if let Some(writer) = writers.remove(dir) {
                files.extend(writer.finish()?);
            }
        }
        // No await from here on: the commit cannot be interrupted by cancellation.
        self.commit(&order, &files)?;
        drop(staging);
        Ok(rows)
    }

    /// Moves the written files into place, then (OVERWRITE) deletes the files they replace.
    fn commit(&self, dirs: &[String], files: &[(PathBuf, PathBuf)]) -> Result<()> {
        let root = &self.config.path;
        let mut old = Vec::new();
        if self.overwrite {
            if self.layout.partition_indices.is_empty() {
                old = data_files_in(root)?;
            } else {
                for dir in dirs {
                    old.extend(data_files_in(&root.join(dir))?);
                }
            }
        }
        let mut moved: Vec<&Path> = Vec::new();
        for (staged, target) in files {
            let result = target
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::rename(staged, target));
            if let Err(e) = result {
                // Take back what was already moved, so the table is as it was.
                for path in moved {
                    let _ = std::fs::remove_file(path);
                }
                return Err(Error::io(
                    format!("cannot move '{}' into place", target.display()),
                    e,
                ));
            }
            moved.push(target);
        }
        for path in old {
            std::fs::remove_file(&path)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| {
                    Error::io(
                        format!("cannot delete replaced file '{}'", path.display()),
                        e,
                    )
                })?;
        }
        Ok(())
    }

    /// Splits a batch of the table's physical columns into the data-file batches of each
    /// partition directory (relative path, `""` when unpartitioned).
    pub(crate) fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        let layout = &self.layout;
        let columns = (0..layout.schema.fields().len())
            .filter(|i| !layout.partition_indices.contains(i))
            .map(|i| batch.columns().get(i).cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::internal(format!(
                    "INSERT into {} got too few columns",
                    self.describe()
                ))
            })?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let data =
            RecordBatch::try_new_with_options(Arc::clone(&layout.data_schema), columns, &options)
                .map_err(|e| Error::from(e).context(format!("while writing {}", self.describe())))?;
        if layout.partition_indices.is_empty() {
            return Ok(vec![(String::new(), data)]);
        }
        let format = FormatOptions::default();
        let formatters = layout
            .partition_indices
            .iter()
            .map(|&i| {
                let array = batch.column(i);
                Ok((
                    layout.schema.field(i).name().as_str(),
                    array,
                    ArrayFormatter::try_new(array.as_ref(), &format)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in 0..batch.num_rows() {
            let mut dir = String::new();
            for (name, array, formatter) in &formatters {
                let value = if array.is_null(row) {
                    String::new()
                } else {
                    formatter.value(row).to_string()
                };
                let value = if value.is_empty() {
                    self.config.default_partition.clone()
                } else {
                    escape_path_name(&value)
                };
                dir.push_str(&escape_path_name(name));
                dir.push('=');
                dir.push_str(&value);
                dir.push('/');
            }
            dir.pop();
            let row =
                u32::try_from(row).map_err(|_| Error::internal("batch too large to split"))?;
            match index.get(&dir) {
                Some(&g) => groups[g].1.push(row),
                None => {
                    index.insert(dir.clone(), groups.len());
                    groups.push((dir, vec![row]));
                }
            }
        }
        groups
            .into_iter()
            .map(|(dir, rows)| Ok((dir, take_record_batch(&data, &UInt32Array::from(rows))?)))
            .collect()
    }
}

/// Escapes a partition directory name as Hive's `FileUtils.escapePathName` does.
pub(crate) fn escape_path_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let unsafe_char = c < ' '
            || matches!(
                c,
                '"' | '#'
                    | '%'
                    | '\''
                    | '*'
                    | '/'
                    | ':'
                    | '='
                    | '?'
                    | '\\'
                    | '\x7f'
                    | '{'
                    | '['
                    | ']'
                    | '^'
            );
        if unsafe_char {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The visible data files directly in `dir` (none when it does not exist).
fn data_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot list '{}'", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list '{}'", dir.display()), e))?;
        let path = entry.path();
        if !is_hidden(&path) && entry.file_type().is_ok_and(|t| t.is_file()) {
            out.push(path);
        }
    }
    Ok(out)
}

impl DisplayAs for FileSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "FileSink: table={}, path={}, format={}, mode={}",
            self.table,
            self.config.path.display(),
            match self.config.format {
                Format::DebeziumJson => "debezium-json",
                other => other.extension().trim_start_matches('.'),
            },
            if self.overwrite {
                "overwrite"
            } else {
                "append"
            }
        )
    }
}

#[async_trait::async_trait]
impl DataSink for FileSink {
    fn schema(&self) -> &SchemaRef {
        &self.layout.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        self.write(data).await.map_err(|e| {
            DataFusionError::from(e.context(format!("while writing {}", self.describe())))
        })
    }
}

/// The staging directory of one write; removed with everything in it when dropped.
struct StagingDir {
    path: PathBuf,
}

impl StagingDir {
    fn create(path: PathBuf) -> Result<Self> {
        std::fs::create_dir(&path).map_err(|e| {
            Error::io(
                format!("cannot create staging directory '{}'", path.display()),
                e,
            )
        })?;
        Ok(Self { path })
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A buffered file that counts the bytes written to it.
struct CountingFile {
    inner: BufWriter<File>,
    count: Arc<AtomicU64>,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

enum FormatWriter {
    Csv(Box<datafusion::arrow::csv::Writer<CountingFile>>),
    Json(LineDelimitedWriter<CountingFile>),
    Parquet(Box<ArrowWriter<CountingFile>>),
    Debezium(Box<DebeziumWriter>),
}

/// Writes changes as debezium-json lines.
struct DebeziumWriter {
    out: CountingFile,
    encoder: Encoder,
    /// The lines of the batch being written (reused).
    buffer: String,
}

impl DebeziumWriter {
    fn write(&mut self, changes: &Changes) -> Result<()> {
        self.buffer.clear();
        self.encoder.encode(changes, &mut self.buffer)?;
        self.out
            .write_all(self.buffer.as_bytes())
            .map_err(|e| Error::io("cannot write a debezium-json file", e))
    }
}

/// One data file being written in the staging directory.
struct OpenFile {
    writer: FormatWriter,
    opened: Instant,
    bytes: Arc<AtomicU64>,
    staged: PathBuf,
    target: PathBuf,
}

impl OpenFile {
    fn size(&self) -> u64 {
        let written = self.bytes.load(Ordering::Relaxed);
        match &self.writer {
            FormatWriter::Parquet(w) => written + w.in_progress_size() as u64,
            _ => written,
        }
    }

    fn finish(self) -> Result<(PathBuf, PathBuf)> {
        let mut file = match self.writer {
            FormatWriter::Csv(w) => w.into_inner(),
            FormatWriter::Json(mut w) => {
                w.finish()?;
                w.into_inner()
            }
            FormatWriter::Parquet(w) => w
                .into_inner()
                .map_err(|e| Error::external(format!("Parquet: {e}")))?,
            FormatWriter::Debezium(w) => w.out,
        };
        file.flush()
            .map_err(|e| Error::io(format!("cannot write '{}'", self.staged.display()), e))?;
        Ok((self.staged, self.target))
    }
}

/// Where a file is written before it is complete.
enum Staging {
    /// In this staging directory, under its final name (batch `INSERT`: moved into place when
    /// the statement commits).
    Dir(PathBuf),
    /// Next to its final place as a hidden `.<name>.inprogress` file (streaming: renamed as soon
    /// as the file is complete).
    InPlace,
}

/// Writes the files of one partition directory, rolling to a new file past the size limit.
struct RollingWriter {
    staging: Staging,
    target_dir: PathBuf,
    job: String,
    config: Arc<FsConfig>,
    schema: SchemaRef,
    current: Option<OpenFile>,
    done: Vec<(PathBuf, PathBuf)>,
    next: usize,
}

impl RollingWriter {
    fn new(
        staging: Staging,
        target_dir: PathBuf,
        job: String,
        config: Arc<FsConfig>,
        schema: SchemaRef,
    ) -> Self {
        Self {
            staging,
            target_dir,
            job,
            config,
            schema,
            current: None,
            done: Vec::new(),
            next: 0,
        }
    }

    fn open(&mut self) -> Result<OpenFile> {
        let name = format!(
            "part-{}-{}{}",
            self.job,
            self.next,
            self.config.format.extension()
        );
        self.next += 1;
        let (dir, staged_name) = match &self.staging {
            Staging::Dir(dir) => (dir, name.clone()),
            Staging::InPlace => (&self.target_dir, format!(".{name}.inprogress")),
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create '{}'", dir.display()), e))?;
        let staged = dir.join(staged_name);
        let file = File::create(&staged)
            .map_err(|e| Error::io(format!("cannot create '{}'", staged.display()), e))?;
        let bytes = Arc::new(AtomicU64::new(0));
        let out = CountingFile {
            inner: BufWriter::new(file),
            count: Arc::clone(&bytes),
        };
        let writer = match self.config.format {
            Format::Csv => {
                let csv = &self.config.csv;
                let builder = CsvWriterBuilder::new()
                    .with_header(csv.header)
                    .with_delimiter(csv.delimiter)
                    .with_quote(csv.quote)
                    .with_null(csv.null_literal.clone().unwrap_or_default());
                FormatWriter::Csv(Box::new(builder.build(out)))
            }
            Format::Json => FormatWriter::Json(LineDelimitedWriter::new(out)),
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(self.config.parquet_compression)
                    .build();
                let writer = ArrowWriter::try_new(out, Arc::clone(&self.schema), Some(props))
                    .map_err(|e| Error::external(format!("Parquet: {e}")))?;
                FormatWriter::Parquet(Box::new(writer))
            }
            Format::DebeziumJson => FormatWriter::Debezium(Box::new(DebeziumWriter {
                out,
                encoder: Encoder::new(&self.schema, &self.config.debezium),
                buffer: String::new(),
            })),
        };
        Ok(OpenFile {
            writer,
            opened: Instant::now(),
            bytes,
            staged,
            target: self.target_dir.join(name),
        })
    }

    /// Writes changes: inserts only, except in the `debezium-json` format, which writes every
    /// change in order.
    fn write(&mut self, changes: &Changes) -> Result<()> {
        if !changes.is_insert_only() && self.config.format != Format::DebeziumJson {
            return Err(Error::internal(
                "a filesystem writer of rows got update changes",
            ));
        }
        let batch = &changes.data;
        let mut file = match self.current.take() {
            Some(f) => f,
            None => self.open()?,
        };
        match &mut file.writer {
            FormatWriter::Csv(w) => w.write(batch)?,
            FormatWriter::Json(w) => w.write(batch)?,
            FormatWriter::Parquet(w) => w
                .write(batch)
                .map_err(|e| Error::external(format!("Parquet: {e}")))?,
            FormatWriter::Debezium(w) => w.write(changes)?,
        }
        if file.size() >= self.config.file_size {
            self.done.push(file.finish()?);
        } else {
            self.current = Some(file);
        }
        Ok(())
    }

    /// Closes the current file; returns (staged, target) paths of every file written.
    fn finish(mut self) -> Result<Vec<(PathBuf, PathBuf)>> {
        if let Some(file) = self.current.take() {
            self.done.push(file.finish()?);
        }
        Ok(self.done)
    }
}

/// The streaming write side of a filesystem table (`INSERT` in streaming mode; append-only
/// input, except for `debezium-json` tables, which take every change and are never
/// partitioned): one instance's rolling files per partition directory. Each file is written as
/// a hidden `.part-<id>-<n>.<ext>.inprogress` next to its final place and renamed to
/// `part-<id>-<n>.<ext>` once complete: past `sink.rolling-policy.file-size`, after being open
/// for `sink.rolling-policy.rollover-interval` (checked every `check-interval`), or at the end
/// of the input. Readers (which skip hidden files) only ever see complete files. When the job is
/// cancelled, the in-progress files are deleted; completed files stay.
pub(crate) struct StreamingFileWriter {
    sink: FileSink,
    job: String,
    writers: HashMap<String, RollingWriter>,
    /// Files completed so far.
    pub(crate) files: u64,
    /// Two-phase commit (the job takes checkpoints): completed files wait, hidden, until the
    /// checkpoint after them completes.
    transactional: bool,
    /// Files completed since the last checkpoint barrier.
    closed: Vec<(PathBuf, PathBuf)>,
    /// Files waiting for their checkpoint to complete, by checkpoint.
    pending: Vec<(u64, Vec<(PathBuf, PathBuf)>)>,
}

/// What a checkpoint records of a [`StreamingFileWriter`] (JSON).
#[derive(serde::Serialize, serde::Deserialize)]
struct WriterState {
    /// The file-name id of this writer (kept across restores, so names never collide).
    job: String,
    /// Partition directories and the next file number in each.
    dirs: Vec<(String, usize)>,
    /// Completed files waiting for a checkpoint: (checkpoint, [(in-progress path, final path)]).
    pending: Vec<(u64, Vec<(PathBuf, PathBuf)>)>,
}

impl StreamingFileWriter {
    pub(crate) fn new(table: String, config: Arc<FsConfig>, layout: Layout) -> Result<Self> {
        let root = &config.path;
        if root.is_file() {
            return Err(Error::invalid(format!(
                "cannot write to table `{table}` (connector 'filesystem'): path '{}' is a file, not a directory",
                root.display()
            )));
        }
        Ok(Self {
            sink: FileSink::new(table, config, layout, false),
            job: uuid::Uuid::new_v4().simple().to_string(),
            writers: HashMap::new(),
            files: 0,
            transactional: false,
            closed: Vec::new(),
            pending: Vec::new(),
        })
    }

    pub(crate) fn table(&self) -> &str {
        &self.sink.table
    }

    /// How often open files should be checked for rollover.
    pub(crate) fn check_interval(&self) -> std::time::Duration {
        self.sink.config.check_interval
    }

    /// Completed files: visible now, or (two-phase commit) at the next completed checkpoint.
    fn completed(&mut self, done: Vec<(PathBuf, PathBuf)>) -> Result<()> {
        if self.transactional {
            self.closed.extend(done);
        } else {
            self.files += publish(&done)?;
        }
        Ok(())
    }

    fn writer_for(&mut self, dir: &str) -> &mut RollingWriter {
        self.writers.entry(dir.to_string()).or_insert_with(|| {
            RollingWriter::new(
                Staging::InPlace,
                self.sink.config.path.join(dir),
                self.job.clone(),
                Arc::clone(&self.sink.config),
                Arc::clone(&self.sink.layout.data_schema),
            )
        })
    }

    /// Whether the table takes updates and deletes (a changelog format).
    pub(crate) fn accepts_updates(config: &FsConfig) -> bool {
        config.format == Format::DebeziumJson
    }

    /// Appends changes of the table's columns.
    ///
    /// # Errors
    /// `Invalid` for updates or deletes into a table of rows; I/O errors.
    pub(crate) fn write(&mut self, changes: &Changes) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        if !changes.is_insert_only() {
            if !Self::accepts_updates(&self.sink.config) {
                return Err(Error::invalid(format!(
                    "table sink of connector 'filesystem' got update changes; it takes inserts \
                     only, unless 'format' = 'debezium-json' (table {})",
                    self.table()
                )));
            }
            if !self.sink.layout.partition_indices.is_empty() {
                return Err(Error::internal(format!(
                    "partitioned changelog table {}",
                    self.table()
                )));
            }
            let writer = self.writer_for("");
            writer.write(changes)?;
            let done = std::mem::take(&mut writer.done);
            return self.completed(done);
        }
        for (dir, part) in self.sink.split(&changes.data)? {
            let writer = self.writer_for(&dir);
            writer.write(&Changes::inserts(part))?;
            let done = std::mem::take(&mut writer.done);
            self.completed(done)?;
        }
        Ok(())
    }

    /// Completes the files open for longer than the rollover interval.
    pub(crate) fn roll_due(&mut self) -> Result<()> {
        let interval = self.sink.config.rollover_interval;
        let mut done = Vec::new();
        for writer in self.writers.values_mut() {
            if writer
                .current
                .as_ref()
                .is_some_and(|f| f.opened.elapsed() >= interval)
                && let Some(file) = writer.current.take()
            {
                done.push(file.finish()?);
            }
        }
        self.completed(done)
    }

    /// Completes every open file (the end of the input).
    pub(crate) fn finish(&mut self) -> Result<()> {
        let mut done = Vec::new();
        for writer in self.writers.values_mut() {
            if let Some(file) = writer.current.take() {
                done.push(file.finish()?);
            }
        }
        self.completed(done)
    }

    /// From now on files become visible only when a checkpoint covering them completes.
    pub(crate) fn begin_transactions(&mut self) {
        self.transactional = true;
    }

    /// A checkpoint barrier: completes the open files (a file never spans two checkpoints),
    /// makes everything completed since the previous barrier pending on `checkpoint`, and
    /// returns the writer's state.
    pub(crate) fn snapshot(&mut self, checkpoint: u64) -> Result<Vec<u8>> {
        self.finish()?;
        let closed = std::mem::take(&mut self.closed);
        if !closed.is_empty() {
            self.pending.push((checkpoint, closed));
        }
        let mut dirs: Vec<(String, usize)> = self
            .writers
            .iter()
            .map(|(d, w)| (d.clone(), w.next))
            .collect();
        dirs.sort();
        let state = WriterState {
            job: self.job.clone(),
            dirs,
            pending: self.pending.clone(),
        };
        serde_json::to_vec(&state)
            .map_err(|e| Error::internal(format!("encoding the file sink's state: {e}")))
    }

    /// Checkpoint `checkpoint` completed: its files, and every earlier checkpoint's, become
    /// visible.
    pub(crate) fn commit(&mut self, checkpoint: u64) -> Result<()> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(id, _)| *id <= checkpoint);
        self.pending = later;
        for (_, files) in due {
            self.files += publish_again(&files)?;
        }
        Ok(())
    }

    /// Starts from a complete checkpoint's state: deletes this writer's files written after it
    /// (in progress, or made visible by a later checkpoint that is not the one restored),
    /// commits its pending files (those an earlier run committed already stay), and continues
    /// its file numbering. After a change of parallelism an instance gets several old writers'
    /// states (or none): it settles each and continues as the first.
    pub(crate) fn restore(&mut self, states: &[&[u8]]) -> Result<()> {
        let mut first = true;
        for state in states {
            if state.is_empty() {
                continue;
            }
            let state: WriterState = serde_json::from_slice(state).map_err(|e| {
                Error::external(format!(
                    "corrupt checkpoint state of the file sink of table `{}`: {e}",
                    self.sink.table
                ))
            })?;
            let mut next = HashMap::new();
            if first {
                self.job = state.job.clone();
                self.writers.clear();
            }
            for (dir, n) in state.dirs {
                if first {
                    self.writer_for(&dir).next = n;
                }
                next.insert(normal(&self.sink.config.path.join(&dir)), n);
            }
            first = false;
            let root = self.sink.config.path.clone();
            remove_newer(&root, &format!("part-{}-", state.job), &next)?;
            for (_, files) in &state.pending {
                self.files += publish_again(files)?;
            }
        }
        Ok(())
    }
}

/// A path without `.` components or a trailing separator (a map key).
fn normal(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Deletes the files `part-<job>-<n>...` (visible, or hidden in progress) under `dir`,
/// recursively, whose number `n` is at least the next number its directory had at the
/// checkpoint (every number in a directory the checkpoint does not know).
fn remove_newer(dir: &Path, prefix: &str, next: &HashMap<PathBuf, usize>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot list '{}'", dir.display()), e)),
    };
    let limit = next.get(&normal(dir)).copied().unwrap_or(0);
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list '{}'", dir.display()), e))?;
        let path = entry.path();
        if path.is_dir() {
            remove_newer(&path, prefix, next)?;
            continue;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix('.').unwrap_or(&name).strip_prefix(prefix) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<usize>()
            && n >= limit
        {
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("cannot delete '{}'", path.display()), e))?;
        }
    }
    Ok(())
}

/// Publishes files of a complete checkpoint, idempotently: a file already renamed by an
/// earlier run is left as it is. Returns how many were renamed now.
fn publish_again(files: &[(PathBuf, PathBuf)]) -> Result<u64> {
    let mut n = 0;
    for (staged, target) in files {
        if staged.exists() {
            n += publish(&[(staged.clone(), target.clone())])?;
        } else if !target.exists() {
            return Err(Error::external(format!(
                "the file '{}' of a complete checkpoint is gone (neither it nor '{}' exists); \
                 the table's output of that checkpoint is lost",
                staged.display(),
                target.display()
            )));
        }
    }
    Ok(n)
}

impl Drop for StreamingFileWriter {
    fn drop(&mut self) {
        for writer in self.writers.values_mut() {
            if let Some(file) = writer.current.take() {
                let staged = file.staged.clone();
                drop(file);
                let _ = std::fs::remove_file(staged);
            }
        }
    }
}

/// Renames completed in-progress files to their final names; returns how many.
fn publish(files: &[(PathBuf, PathBuf)]) -> Result<u64> {
    for (staged, target) in files {
        std::fs::rename(staged, target).map_err(|e| {
            Error::io(
                format!(
                    "cannot rename '{}' to '{}'",
                    staged.display(),
                    target.display()
                ),
                e,
            )
        })?;
    }
    Ok(files.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_hive() {
        assert_eq!(escape_path_name("a/b=c"), "a%2Fb%3Dc");
        assert_eq!(
            escape_path_name("2024-01-01T10:00:00"),
            "2024-01-01T10%3A00%3A00"
        );
        assert_eq!(escape_path_name("50%"), "50%25");
        assert_eq!(escape_path_name("plain text-1.5"), "plain text-1.5");
        assert_eq!(escape_path_name("tab\there"), "tab%09here");
    }
}
