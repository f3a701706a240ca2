//! The `filesystem` connector: tables stored as CSV, newline-delimited JSON or Parquet files in a
//! local directory (or a single file), optionally partitioned Hive-style (`col=value/`), or as a
//! changelog of debezium-json lines (`super::debezium`, read by `super::changelog_scan`).
//!
//! Reading goes through DataFusion's `ListingTable` (parallel scans, Parquet statistics and
//! predicate pushdown) with the declared schema, never an inferred one. Partition columns are
//! listed as strings and turned into their declared types (and `partition.default-name` into
//! NULL) by a projection on top of the scan, which also puts them back in declared order.
//! Writing is [`super::file_sink::FileSink`]'s job.
//!
//! With `source.monitor-interval` the table is unbounded: its scan lists the directory again
//! every interval and emits the rows of files it has not read yet, forever.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue, TableReference};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::cache::cache_manager::TableScopedPath;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType, cast, lit, when};
use datafusion::parquet::basic::{Compression, GzipLevel, ZstdLevel};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::checked_format::CheckedFormat;
use super::context_exec::ScanContextExec;
use super::debezium::{DEBEZIUM_OPTIONS, DebeziumConfig};
use super::file_sink::FileSink;
use super::options::ConnectorOptions;
use super::stream_exec::{SplitDiscovery, StreamExec};
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::types::SqlType;

/// Options every filesystem table accepts, whatever its format.
const COMMON_OPTIONS: &[&str] = &[
    "path",
    "format",
    "partition.default-name",
    "source.monitor-interval",
    "sink.rolling-policy.file-size",
    "sink.rolling-policy.rollover-interval",
    "sink.rolling-policy.check-interval",
    "sink.parallelism",
];
const CSV_OPTIONS: &[&str] = &[
    "csv.field-delimiter",
    "csv.quote-character",
    "csv.null-literal",
    "csv.ignore-parse-errors",
    "csv.allow-comments",
    "csv.header",
];
const JSON_OPTIONS: &[&str] = &["json.ignore-parse-errors", "json.fail-on-missing-field"];
const PARQUET_OPTIONS: &[&str] = &["parquet.compression"];

/// Flink's default name of the partition holding NULL (and empty) partition values.
pub(crate) const DEFAULT_PARTITION_NAME: &str = "__DEFAULT_PARTITION__";
/// Default `sink.rolling-policy.file-size`: 128MB.
const DEFAULT_FILE_SIZE: u64 = 128 << 20;
/// Default `sink.rolling-policy.rollover-interval`: 30 min, as in Flink.
const DEFAULT_ROLLOVER_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// Default `sink.rolling-policy.check-interval`: 1 min, as in Flink.
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// A file format of the filesystem connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Json,
    Parquet,
    /// `debezium-json`: one change event per line (a changelog, not rows).
    DebeziumJson,
}

impl Format {
    /// The file extension Weir writes and reads from directories, with its dot.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Format::Csv => ".csv",
            Format::Json | Format::DebeziumJson => ".json",
            Format::Parquet => ".parquet",
        }
    }
}

/// The CSV format's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvConfig {
    pub delimiter: u8,
    pub quote: u8,
    /// `csv.null-literal`: the text standing for NULL (written for NULLs, read back as NULL).
    pub null_literal: Option<String>,
    /// `csv.allow-comments`: lines starting with `#` are skipped when reading.
    pub allow_comments: bool,
    /// `csv.header` (our extension): files start with a header line.
    pub header: bool,
}

/// A filesystem table's parsed options.
#[derive(Debug, Clone)]
pub(crate) struct FsConfig {
    /// The table's directory or single file, absolute.
    pub path: PathBuf,
    pub format: Format,
    pub csv: CsvConfig,
    pub parquet_compression: Compression,
    pub debezium: DebeziumConfig,
    pub default_partition: String,
    /// `sink.rolling-policy.file-size`: a new file is started once the current one is past it.
    pub file_size: u64,
    /// `sink.rolling-policy.rollover-interval` (streaming): a file open this long is completed.
    pub rollover_interval: Duration,
    /// `sink.rolling-policy.check-interval` (streaming): how often open files are checked.
    pub check_interval: Duration,
    /// `source.monitor-interval`: the directory is listed again this often, forever.
    pub monitor_interval: Option<Duration>,
}

impl FsConfig {
    /// Parses and checks a filesystem table's options and partition columns.
    pub(crate) fn parse(o: &ConnectorOptions, def: &TableDef) -> Result<FsConfig> {
        let format = match o.required("format")?.trim().to_ascii_lowercase().as_str() {
            "csv" => Format::Csv,
            "json" => Format::Json,
            "parquet" => Format::Parquet,
            "debezium-json" => Format::DebeziumJson,
            other => {
                return Err(o.bad_value(
                    "format",
                    other,
                    "valid formats: csv, debezium-json, json, parquet",
                ));
            }
        };
        let format_options = match format {
            Format::Csv => CSV_OPTIONS,
            Format::Json => JSON_OPTIONS,
            Format::Parquet => PARQUET_OPTIONS,
            Format::DebeziumJson => DEBEZIUM_OPTIONS,
        };
        let known: Vec<&str> = COMMON_OPTIONS
            .iter()
            .chain(format_options)
            .chain(super::options::WATERMARK_OPTIONS)
            .copied()
            .collect();
        o.check_known(&known, |_| Ok(false))?;

        let path = parse_path(o, o.required("path")?)?;
        let default_partition = o
            .get("partition.default-name")
            .unwrap_or(DEFAULT_PARTITION_NAME)
            .to_string();
        if default_partition.is_empty() {
            return Err(o.bad_value("partition.default-name", "", "expected a non-empty name"));
        }
        let file_size = o
            .memory_size("sink.rolling-policy.file-size")?
            .unwrap_or(DEFAULT_FILE_SIZE);
        if file_size == 0 {
            return Err(o.bad_value(
                "sink.rolling-policy.file-size",
                "0",
                "expected a positive size",
            ));
        }
        let rollover_interval = o
            .duration("sink.rolling-policy.rollover-interval")?
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_ROLLOVER_INTERVAL);
        let check_interval = o
            .duration("sink.rolling-policy.check-interval")?
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_CHECK_INTERVAL);
        let monitor_interval = o
            .duration("source.monitor-interval")?
            .filter(|d| !d.is_zero());
        o.u64("sink.parallelism")?;

        let csv = CsvConfig {
            delimiter: o.char("csv.field-delimiter", b',')?,
            quote: o.char("csv.quote-character", b'"')?,
            null_literal: o.get("csv.null-literal").map(str::to_string),
            allow_comments: o.bool("csv.allow-comments", false)?,
            header: o.bool("csv.header", false)?,
        };
        if csv.delimiter == csv.quote {
            return Err(Error::invalid(format!(
                "options 'csv.field-delimiter' and 'csv.quote-character' of {} must differ",
                o.describe()
            )));
        }
        if o.bool("csv.ignore-parse-errors", false)? || o.bool("json.ignore-parse-errors", false)? {
            return Err(Error::not_supported(format!(
                "'{}.ignore-parse-errors' = 'true' ({}) is not supported yet",
                if format == Format::Csv { "csv" } else { "json" },
                o.describe()
            )));
        }
        // Missing JSON fields always read as NULL; `json.fail-on-missing-field` is accepted for
        // compatibility but not enforced.
        o.bool("json.fail-on-missing-field", false)?;
        let parquet_compression = match o.one_of(
            "parquet.compression",
            &["snappy", "zstd", "gzip", "none", "uncompressed"],
        )? {
            None | Some("snappy") => Compression::SNAPPY,
            Some("zstd") => Compression::ZSTD(ZstdLevel::default()),
            Some("gzip") => Compression::GZIP(GzipLevel::default()),
            Some(_) => Compression::UNCOMPRESSED,
        };

        check_partition_keys(o, def)?;
        let debezium = DebeziumConfig::parse(o)?;
        if format == Format::DebeziumJson {
            super::debezium::check_table(o, def, monitor_interval.is_some())?;
        }
        Ok(FsConfig {
            path,
            format,
            csv,
            parquet_compression,
            debezium,
            default_partition,
            file_size,
            rollover_interval,
            check_interval,
            monitor_interval,
        })
    }
}

/// A local path or `file://` URL, made absolute.
fn parse_path(o: &ConnectorOptions, raw: &str) -> Result<PathBuf> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(o.bad_value("path", raw, "expected a local path or a file:// URL"));
    }
    let path = if let Some(rest) = raw.strip_prefix("file:") {
        let url = url::Url::parse(raw)
            .map_err(|e| o.bad_value("path", raw, &format!("not a valid file URL ({e})")))?;
        url.to_file_path()
            .map_err(|()| o.bad_value("path", raw, &format!("'{rest}' is not a local file path")))?
    } else if let Some((scheme, _)) = raw.split_once("://") {
        return Err(Error::not_supported(format!(
            "file system scheme '{scheme}' in option 'path' of {} is not supported yet; use a local path or a file:// URL",
            o.describe()
        )));
    } else {
        PathBuf::from(raw)
    };
    std::path::absolute(&path).map_err(|e| {
        Error::io(
            format!("cannot resolve path '{raw}' of {}", o.describe()),
            e,
        )
    })
}

/// Partition keys must be physical columns of a type a directory name can hold, and at least one
/// column must stay in the data files.
fn check_partition_keys(o: &ConnectorOptions, def: &TableDef) -> Result<()> {
    for key in &def.partition_keys {
        let Some((_, ty, _)) = def.physical_columns().find(|(c, _, _)| &c.name == key) else {
            return Err(Error::invalid(format!(
                "partition column `{key}` of {} is not a physical column of the table",
                o.describe()
            )));
        };
        if !partition_type_supported(ty) {
            return Err(Error::not_supported(format!(
                "partition column `{key}` of type {ty} ({}) is not supported yet",
                o.describe()
            )));
        }
    }
    if !def.partition_keys.is_empty() && def.physical_columns().count() <= def.partition_keys.len()
    {
        return Err(Error::not_supported(format!(
            "a filesystem table whose columns are all partition columns ({}) is not supported yet",
            o.describe()
        )));
    }
    Ok(())
}

fn partition_type_supported(ty: &SqlType) -> bool {
    matches!(
        ty,
        SqlType::Boolean
            | SqlType::TinyInt
            | SqlType::SmallInt
            | SqlType::Int
            | SqlType::BigInt
            | SqlType::Float
            | SqlType::Double
            | SqlType::Decimal { .. }
            | SqlType::Char { .. }
            | SqlType::Varchar { .. }
            | SqlType::String
            | SqlType::Date
            | SqlType::Timestamp { .. }
    )
}

/// Where each physical column is stored: in the data files or in the directory names.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// All physical columns, declared order.
    pub schema: SchemaRef,
    /// The columns stored in the data files, declared order.
    pub data_schema: SchemaRef,
    /// Indices (into `schema`) of the partition columns, in `PARTITIONED BY` order.
    pub partition_indices: Vec<usize>,
}

impl Layout {
    pub(crate) fn new(schema: SchemaRef, partition_keys: &[String]) -> Result<Layout> {
        let partition_indices = partition_keys
            .iter()
            .map(|k| {
                schema.index_of(k).map_err(|_| {
                    Error::invalid(format!("partition column `{k}` is not a physical column"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let data_schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(i, _)| !partition_indices.contains(i))
                .map(|(_, f)| Arc::clone(f))
                .collect::<Vec<_>>(),
        ));
        Ok(Layout {
            schema,
            data_schema,
            partition_indices,
        })
    }

    /// The index of declared column `i` in the listing table's schema (data columns in declared
    /// order, then partition columns in `PARTITIONED BY` order).
    fn listing_index(&self, i: usize) -> usize {
        match self.partition_indices.iter().position(|p| *p == i) {
            Some(k) => self.data_schema.fields().len() + k,
            None => i - self.partition_indices.iter().filter(|p| **p < i).count(),
        }
    }
}

/// A filesystem table's options and layout, for its streaming writer.
pub(crate) type StreamingParts = (Arc<FsConfig>, Layout);

/// A filesystem table: reads through `ListingTable`, writes through [`FileSink`].
#[derive(Debug)]
pub(crate) struct FilesystemTable {
    pub(crate) name: String,
    pub(crate) config: Arc<FsConfig>,
    pub(crate) layout: Layout,
}

impl FilesystemTable {
    pub(crate) fn try_new(name: &str, def: &TableDef, schema: SchemaRef) -> Result<Self> {
        let o = ConnectorOptions::new(Some(name), "filesystem", &def.options);
        let config = FsConfig::parse(&o, def)?;
        let layout = Layout::new(schema, &def.partition_keys)?;
        Ok(Self {
            name: name.to_string(),
            config: Arc::new(config),
            layout,
        })
    }

    /// What the streaming writer needs: the parsed options and the column layout.
    pub(crate) fn streaming_parts(&self) -> StreamingParts {
        (Arc::clone(&self.config), self.layout.clone())
    }

    fn partition_names(&self) -> Vec<&str> {
        self.layout
            .partition_indices
            .iter()
            .map(|&i| self.layout.schema.field(i).name().as_str())
            .collect()
    }

    /// The declared type of a partition column, by name.
    fn partition_type(&self, name: &str) -> Option<&DataType> {
        self.layout
            .partition_indices
            .iter()
            .map(|&i| self.layout.schema.field(i))
            .find(|f| f.name() == name)
            .map(|f| f.data_type())
    }

    /// The expression turning a partition column, listed as a string, into its declared type:
    /// the default partition name is NULL.
    fn typed_partition_expr(&self, name: &str, data_type: &DataType) -> DfResult<Expr> {
        let raw = Expr::Column(Column::new_unqualified(name));
        let value = if *data_type == DataType::Utf8 {
            raw.clone()
        } else {
            cast(raw.clone(), data_type.clone())
        };
        when(
            raw.eq(lit(self.config.default_partition.as_str())),
            lit(ScalarValue::try_new_null(data_type)?),
        )
        .otherwise(value)
    }

    /// Rewrites a filter for the listing table: filters on partition columns only get the typed
    /// partition expressions; filters on data columns only pass as they are; mixed ones are left
    /// out (the filter above the scan still applies every filter).
    fn listing_filter(&self, filter: &Expr) -> Option<Expr> {
        let columns = filter.column_refs();
        let partitions = self.partition_names();
        let on_partition = columns
            .iter()
            .filter(|c| partitions.contains(&c.name.as_str()))
            .count();
        if on_partition == 0 {
            // With a CSV null literal, the files are read as strings: typed filters do not apply.
            return self.null_literal().is_none().then(|| filter.clone());
        }
        if on_partition != columns.len() {
            return None;
        }
        filter
            .clone()
            .transform(|e| match &e {
                Expr::Column(c) => match self.partition_type(&c.name) {
                    Some(dt) => Ok(Transformed::yes(self.typed_partition_expr(&c.name, dt)?)),
                    None => Ok(Transformed::no(e)),
                },
                _ => Ok(Transformed::no(e)),
            })
            .ok()
            .map(|t| t.data)
    }

    /// The CSV null literal, when set. DataFusion's CSV reader ignores null regexes, so such
    /// tables read their data columns as strings and map the literal to NULL themselves.
    fn null_literal(&self) -> Option<&str> {
        match self.config.format {
            Format::Csv => self.config.csv.null_literal.as_deref(),
            _ => None,
        }
    }

    /// The schema the listing table reads the files with.
    fn file_schema(&self) -> SchemaRef {
        if self.null_literal().is_none() {
            return Arc::clone(&self.layout.data_schema);
        }
        let fields = self
            .layout
            .data_schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true));
        Arc::new(Schema::new(fields.collect::<Vec<_>>()))
    }

    /// The expression reading data column `name` from the listing table.
    fn data_column_expr(&self, name: &str, data_type: &DataType) -> DfResult<Expr> {
        let raw = Expr::Column(Column::new_unqualified(name));
        let Some(null_literal) = self.null_literal() else {
            return Ok(raw);
        };
        let value = if *data_type == DataType::Utf8 {
            raw.clone()
        } else {
            cast(raw.clone(), data_type.clone())
        };
        when(
            raw.eq(lit(null_literal)),
            lit(ScalarValue::try_new_null(data_type)?),
        )
        .otherwise(value)
    }

    fn file_format(&self, state: &dyn Session) -> Arc<dyn FileFormat> {
        match self.config.format {
            Format::Csv => {
                let csv = &self.config.csv;
                Arc::new(
                    CsvFormat::default()
                        .with_has_header(csv.header)
                        .with_delimiter(csv.delimiter)
                        .with_quote(csv.quote)
                        .with_comment(csv.allow_comments.then_some(b'#')),
                )
            }
            // Debezium tables are read by `changelog_scan`, never listed.
            Format::Json | Format::DebeziumJson => {
                Arc::new(JsonFormat::default().with_newline_delimited(true))
            }
            // The session's Parquet options (`SET 'datafusion.execution.parquet.*'`), not the
            // library defaults: pushdown, pruning and metadata settings must reach the reader.
            Format::Parquet => Arc::new(
                ParquetFormat::default().with_options(state.table_options().parquet.clone()),
            ),
        }
    }

    /// The listing table over the table's path as it is now. Errors when the path is missing.
    fn listing_table(&self, state: &dyn Session) -> Result<ListingTable> {
        let path = &self.config.path;
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::external(format!(
                    "path '{}' of table `{}` does not exist",
                    path.display(),
                    self.name
                ))
            } else {
                Error::io(
                    format!(
                        "cannot read path '{}' of table `{}`",
                        path.display(),
                        self.name
                    ),
                    e,
                )
            }
        })?;
        let is_dir = meta.is_dir();
        if !is_dir && !self.layout.partition_indices.is_empty() {
            return Err(Error::invalid(format!(
                "path '{}' of partitioned table `{}` must be a directory, not a file",
                path.display(),
                self.name
            )));
        }
        let url = if is_dir {
            url::Url::from_directory_path(path)
        } else {
            url::Url::from_file_path(path)
        }
        .map_err(|()| {
            Error::invalid(format!(
                "path '{}' of table `{}` is not a valid local path",
                path.display(),
                self.name
            ))
        })?;
        // In a directory, names starting with `_` or `.` (`_SUCCESS`, manifests, staging and
        // in-progress files) are not data, as in Flink and in the watched scan
        // ([`Self::data_files`]). DataFusion's listing does not skip them by itself; the pattern
        // applies to the first path segment below the table (or below its partition directories):
        // the file name, or the directory that holds it.
        let glob = if is_dir {
            Some(glob::Pattern::new(VISIBLE_NAME).map_err(|e| {
                Error::internal(format!("bad file name pattern {VISIBLE_NAME}: {e}"))
            })?)
        } else {
            None
        };
        let table_url = ListingTableUrl::try_new(url, glob)?
            .with_table_ref(TableReference::bare(self.name.as_str()));

        // Always list afresh: files written by an earlier statement (or by others) must be seen.
        if let Some(cache) = state.runtime_env().cache_manager.get_list_files_cache() {
            cache.remove(&TableScopedPath {
                table: table_url.get_table_ref().clone(),
                path: table_url.prefix().clone(),
            });
        }

        let partition_cols = self
            .partition_names()
            .into_iter()
            .map(|n| (n.to_string(), DataType::Utf8))
            .collect();
        // A single file is read whatever its extension; a directory only yields the format's files.
        let extension = if is_dir {
            self.config.format.extension()
        } else {
            ""
        };
        let format = Arc::new(CheckedFormat::new(
            self.file_format(state),
            self.config.format == Format::Parquet,
        ));
        let options = ListingOptions::new(format)
            .with_file_extension(extension)
            .with_table_partition_cols(partition_cols);
        let config = ListingTableConfig::new(table_url)
            .with_listing_options(options)
            .with_schema(self.file_schema());
        // The session's file statistics cache (keyed by path, size and modification time) spares
        // re-reading every footer's statistics on each query; a rewritten file is seen as new.
        let statistics_cache = state.runtime_env().cache_manager.get_file_statistic_cache();
        Ok(ListingTable::try_new(config)?.with_cache(statistics_cache))
    }

    async fn scan_inner(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let listing = self.listing_table(state)?;
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.layout.schema.fields().len()).collect(),
        };
        let mut inner: Vec<usize> = wanted
            .iter()
            .map(|&i| self.layout.listing_index(i))
            .collect();
        inner.sort_unstable();
        inner.dedup();
        let listing_filters: Vec<Expr> = filters
            .iter()
            .filter_map(|f| self.listing_filter(f))
            .collect();
        let plan = listing
            .scan(state, Some(&inner), &listing_filters, limit)
            .await?;

        let identity = wanted
            .iter()
            .map(|&i| self.layout.listing_index(i))
            .collect::<Vec<_>>()
            == inner;
        if identity && self.layout.partition_indices.is_empty() && self.null_literal().is_none() {
            return Ok(plan);
        }
        // Reorder into declared order and type the partition columns.
        let input_schema = plan.schema();
        let df_schema = DFSchema::try_from(Arc::clone(&input_schema))?;
        let mut exprs = Vec::with_capacity(wanted.len());
        for &i in &wanted {
            let field = self.layout.schema.field(i);
            let expr = if self.layout.partition_indices.contains(&i) {
                self.typed_partition_expr(field.name(), field.data_type())?
            } else {
                self.data_column_expr(field.name(), field.data_type())?
            };
            exprs.push((
                state.create_physical_expr(expr, &df_schema)?,
                field.name().clone(),
            ));
        }
        Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
    }
}

impl FilesystemTable {
    /// The scan of a watched directory (`source.monitor-interval`): an unbounded stream of the
    /// rows of every data file, each file read once, in name order per listing; new files are
    /// picked up at the next listing. Files should appear atomically (written elsewhere and
    /// moved in, as Weir's own sinks do): a file is read as it is when first listed.
    fn monitor_scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        interval: Duration,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !self.layout.partition_indices.is_empty() {
            return Err(Error::not_supported(format!(
                "watching the partitioned table `{}` ('source.monitor-interval') is not supported yet",
                self.name
            )));
        }
        let session = state
            .as_any()
            .downcast_ref::<SessionState>()
            .cloned()
            .ok_or_else(|| Error::internal("a filesystem scan needs a DataFusion SessionState"))?;
        let schema = match projection {
            Some(p) => Arc::new(self.layout.schema.project(p)?),
            None => Arc::clone(&self.layout.schema),
        };
        let table = Arc::new(FilesystemTable {
            name: self.name.clone(),
            config: Arc::clone(&self.config),
            layout: self.layout.clone(),
        });
        let projection = projection.cloned();
        let projection_for_discovery = projection.clone();
        let discovery_session = session.clone();
        let out_schema = Arc::clone(&schema);
        let open = Arc::new(move |_partition: usize, _ctx| {
            let (tx, mut rx) = tokio::sync::mpsc::channel(2);
            tokio::spawn(watch_directory(
                Arc::clone(&table),
                session.clone(),
                projection.clone(),
                interval,
                tx,
            ));
            let batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
            Ok(Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&out_schema),
                batches,
            )) as _)
        });
        let discovery = Arc::new(MonitorDiscovery {
            table: Arc::new(FilesystemTable {
                name: self.name.clone(),
                config: Arc::clone(&self.config),
                layout: self.layout.clone(),
            }),
            session: discovery_session,
            projection: projection_for_discovery,
            interval,
        });
        Ok(Arc::new(
            StreamExec::new(
                "FileMonitorExec",
                format!(
                    "table={}, path={}, monitor-interval={}ms",
                    self.name,
                    self.config.path.display(),
                    interval.as_millis()
                ),
                schema,
                1,
                false,
                open,
            )
            .with_discovery(discovery),
        ))
    }

    /// The data files under the table's path now (a single-file table: that file).
    pub(crate) fn data_files(&self) -> Result<Vec<PathBuf>> {
        let root = &self.config.path;
        if root.is_file() {
            return Ok(vec![root.clone()]);
        }
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        let extension = self.config.format.extension();
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("cannot list '{}'", dir.display()), e)),
            };
            for entry in entries {
                let entry =
                    entry.map_err(|e| Error::io(format!("cannot list '{}'", dir.display()), e))?;
                let path = entry.path();
                if is_hidden(&path) {
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path);
                } else if path.to_string_lossy().ends_with(extension) {
                    files.push(path);
                }
            }
        }
        files.sort();
        Ok(files)
    }
}

/// New files of a watched directory as splits of a streaming job: each instance lists the
/// directory every interval and reads the new files whose name hashes to it (a stable FNV-1a
/// hash of the path, so instances divide files without talking to each other), one split each.
struct MonitorDiscovery {
    table: Arc<FilesystemTable>,
    session: SessionState,
    projection: Option<Vec<usize>>,
    interval: Duration,
}

impl MonitorDiscovery {
    /// The rows of one file, in file order.
    async fn read_file(
        table: &FilesystemTable,
        session: &SessionState,
        projection: Option<&Vec<usize>>,
        file: PathBuf,
    ) -> Result<BoxStream<'static, Result<datafusion::arrow::array::RecordBatch>>> {
        let one = FilesystemTable {
            name: table.name.clone(),
            config: Arc::new(FsConfig {
                path: file,
                monitor_interval: None,
                ..(*table.config).clone()
            }),
            layout: table.layout.clone(),
        };
        let plan = one.scan_inner(session, projection, &[], None).await?;
        let task = session.task_ctx();
        let partitions = plan.output_partitioning().partition_count();
        // A large file may be cut into byte ranges: read them in order.
        Ok(futures::stream::iter(0..partitions)
            .flat_map(move |p| match plan.execute(p, Arc::clone(&task)) {
                Ok(s) => s.map(|b| b.map_err(Error::from)).boxed(),
                Err(e) => futures::stream::once(async move { Err(Error::from(e)) }).boxed(),
            })
            .boxed())
    }
}

impl SplitDiscovery for MonitorDiscovery {
    fn discover(
        &self,
        instance: usize,
        parallelism: usize,
        _task: Arc<TaskContext>,
        known: std::collections::HashSet<String>,
    ) -> BoxStream<'static, Result<super::stream_exec::NamedSplit>> {
        let table = Arc::clone(&self.table);
        let session = self.session.clone();
        let projection = self.projection.clone();
        let interval = self.interval;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            let mut seen: std::collections::HashSet<PathBuf> =
                known.into_iter().map(PathBuf::from).collect();
            loop {
                let files = match table.data_files() {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for file in files {
                    if crate::stream::source::split_owner(&file.to_string_lossy(), parallelism)
                        != instance
                        || !seen.insert(file.clone())
                    {
                        continue;
                    }
                    let name = file.to_string_lossy().into_owned();
                    let split = Self::read_file(&table, &session, projection.as_ref(), file)
                        .await
                        .map(|s| (name, s));
                    let failed = split.is_err();
                    if tx.send(split).await.is_err() || failed {
                        return;
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = tx.closed() => return,
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }

    fn open(
        &self,
        name: &str,
        _task: Arc<TaskContext>,
    ) -> BoxStream<'static, Result<datafusion::arrow::array::RecordBatch>> {
        let table = Arc::clone(&self.table);
        let session = self.session.clone();
        let projection = self.projection.clone();
        let file = PathBuf::from(name);
        futures::stream::once(async move {
            Self::read_file(&table, &session, projection.as_ref(), file).await
        })
        .map(|r| match r {
            Ok(s) => s,
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .boxed()
    }
}

/// Lists the table's directory every `interval` and sends the rows of each new file, until the
/// receiver is dropped or an error (which is sent) happens.
async fn watch_directory(
    table: Arc<FilesystemTable>,
    session: SessionState,
    projection: Option<Vec<usize>>,
    interval: Duration,
    tx: tokio::sync::mpsc::Sender<DfResult<datafusion::arrow::array::RecordBatch>>,
) {
    let mut seen: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    loop {
        if tx.is_closed() {
            return;
        }
        let files = match table.data_files() {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        for file in files {
            if !seen.insert(file.clone()) {
                continue;
            }
            let read = MonitorDiscovery::read_file(&table, &session, projection.as_ref(), file);
            let mut stream = match read.await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                if tx.send(batch.map_err(DataFusionError::from)).await.is_err() || failed {
                    return;
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[async_trait::async_trait]
impl TableProvider for FilesystemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.layout.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if let Some(interval) = self.config.monitor_interval {
            return self
                .monitor_scan(state, projection, interval)
                .map_err(DataFusionError::from);
        }
        let plan = match super::changelog_scan::files_of(self) {
            Ok(Some(files)) => super::changelog_scan::materialized_plan(files, projection),
            Ok(None) => self.scan_inner(state, projection, filters, limit).await,
            Err(e) => Err(e),
        }
        .map_err(|e| {
            DataFusionError::from(e.context(format!(
                "while reading table `{}` (connector 'filesystem')",
                self.name
            )))
        })?;
        Ok(Arc::new(ScanContextExec::new(
            plan,
            self.name.clone(),
            "filesystem",
        )))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let overwrite = match insert_op {
            InsertOp::Append => false,
            InsertOp::Overwrite => true,
            InsertOp::Replace => {
                return Err(Error::not_supported(format!(
                    "REPLACE INTO table `{}` (connector 'filesystem') is not supported yet",
                    self.name
                ))
                .into());
            }
        };
        let input_fields = input.schema().fields().len();
        if input_fields != self.layout.schema.fields().len() {
            return Err(Error::internal(format!(
                "INSERT into table `{}` got {input_fields} columns, expected {}",
                self.name,
                self.layout.schema.fields().len()
            ))
            .into());
        }
        let sink = FileSink::new(
            self.name.clone(),
            Arc::clone(&self.config),
            self.layout.clone(),
            overwrite,
        );
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// The glob a listed name must match to be read: not hidden (see [`is_hidden`]).
const VISIBLE_NAME: &str = "[!._]*";

/// Whether a path is inside the table directory's hidden area (staging directories, `_SUCCESS`,
/// `.crc` files): names starting with `_` or `.`.
pub(crate) fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('_') || n.starts_with('.'))
}
