//! The `filesystem` connector's file formats as DataFusion's listing sees them, with Weir's
//! guard around them (see `read_guard`): `CheckedFormat` wraps DataFusion's Parquet/CSV/JSON
//! `FileFormat` for the listing table. Planning reads Parquet footers for statistics through
//! it: the footer is checked first, a failure names the file, and a decoder panic becomes an
//! error. Reading happens in DataFusion's scan under `ScanContextExec`, which, when the scan
//! fails without saying where, calls [`failing_file`] to find the file of its partition that
//! fails when read alone.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::Statistics;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::{FileFormat, FileMeta};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, FileSinkConfig, FileSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::LexRequirement;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use super::read_guard::{check_parquet_tail, guarded};
use crate::error::Error;

/// A local file's path as users know it (object store paths have no leading `/`).
pub(crate) fn display_path(location: &object_store::path::Path) -> String {
    format!("/{location}")
}

/// Adds "in file 'p'" to an error of DataFusion's readers.
fn in_file(err: DataFusionError, file: &str) -> DataFusionError {
    DataFusionError::from(Error::from(err).context(format!("in file '{file}'")))
}

/// Checks a Parquet file's footer (last 8 bytes) against its size, through the object store.
async fn check_parquet_footer(
    store: &Arc<dyn ObjectStore>,
    object: &ObjectMeta,
) -> crate::error::Result<()> {
    let file = display_path(&object.location);
    let len = object.size;
    let tail = store
        .get_range(&object.location, len.saturating_sub(8)..len)
        .await
        .map_err(|e| Error::external(format!("cannot read file '{file}': {e}")))?;
    check_parquet_tail(&file, len, &tail)
}

/// DataFusion's format for the listing table, with footers checked, panics caught and errors
/// naming the file (see the module documentation).
#[derive(Debug)]
pub(crate) struct CheckedFormat {
    inner: Arc<dyn FileFormat>,
    parquet: bool,
}

impl CheckedFormat {
    pub(crate) fn new(inner: Arc<dyn FileFormat>, parquet: bool) -> Self {
        Self { inner, parquet }
    }

    /// Runs one of the inner format's per-file reads, guarded.
    async fn per_file<T>(
        &self,
        store: &Arc<dyn ObjectStore>,
        object: &ObjectMeta,
        read: impl Future<Output = DfResult<T>>,
    ) -> DfResult<T> {
        let file = display_path(&object.location);
        if self.parquet {
            check_parquet_footer(store, object).await?;
        }
        guarded(&file, async {
            read.await.map_err(|e| in_file(e, &file).into())
        })
        .await
        .map_err(DataFusionError::from)
    }
}

#[async_trait]
impl FileFormat for CheckedFormat {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }

    fn get_ext_with_compression(&self, c: &FileCompressionType) -> DfResult<String> {
        self.inner.get_ext_with_compression(c)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.inner.compression_type()
    }

    async fn infer_schema(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> DfResult<SchemaRef> {
        for object in objects.iter().filter(|_| self.parquet) {
            check_parquet_footer(store, object).await?;
        }
        let what = match objects {
            [one] => display_path(&one.location),
            _ => format!("one of {} files", objects.len()),
        };
        guarded(&what, async {
            Ok(self.inner.infer_schema(state, store, objects).await?)
        })
        .await
        .map_err(DataFusionError::from)
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> DfResult<Statistics> {
        let read = self.inner.infer_stats(state, store, table_schema, object);
        self.per_file(store, object, read).await
    }

    async fn infer_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> DfResult<Option<datafusion::physical_expr::LexOrdering>> {
        let read = self
            .inner
            .infer_ordering(state, store, table_schema, object);
        self.per_file(store, object, read).await
    }

    async fn infer_stats_and_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> DfResult<FileMeta> {
        let read = self
            .inner
            .infer_stats_and_ordering(state, store, table_schema, object);
        self.per_file(store, object, read).await
    }

    async fn create_physical_plan(
        &self,
        state: &dyn Session,
        conf: FileScanConfig,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.inner.create_physical_plan(state, conf).await
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        state: &dyn Session,
        conf: FileSinkConfig,
        order_requirements: Option<LexRequirement>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.inner
            .create_writer_physical_plan(input, state, conf, order_requirements)
            .await
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.inner.file_source(table_schema)
    }
}

/// The file scan under `plan` (through single-input nodes such as a projection), if any.
fn file_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    let mut node = plan;
    loop {
        if let Some(exec) = node.downcast_ref::<DataSourceExec>() {
            return exec.data_source().downcast_ref::<FileScanConfig>();
        }
        match node.children().as_slice() {
            [only] => node = only,
            _ => return None,
        }
    }
}

/// Reads one file of `config` alone; its first error, if any (a panic becomes an error).
async fn read_alone(
    config: &FileScanConfig,
    file: &PartitionedFile,
    context: &Arc<TaskContext>,
) -> Option<Error> {
    let path = display_path(&file.object_meta.location);
    if config.file_source().file_type() == "parquet" {
        let store = context
            .runtime_env()
            .object_store(&config.object_store_url)
            .ok()?;
        if let Err(e) = check_parquet_footer(&store, &file.object_meta).await {
            return Some(e);
        }
    }
    let one = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(vec![FileGroup::new(vec![file.clone()])])
        .with_output_partitioning(None)
        .with_limit(None)
        .build();
    let exec = DataSourceExec::from_data_source(one);
    let ctx = Arc::clone(context);
    guarded(&path, async move {
        let mut stream = exec.execute(0, ctx)?;
        while let Some(batch) = stream.next().await {
            batch?;
        }
        Ok(())
    })
    .await
    .err()
}

/// After partition `partition` of a file scan under `plan` failed with `err`: which of its
/// files (or, failing that, of the scan's other files) fails when read alone, and how. `None` when there is no file scan, the error already names one
/// of the partition's files, or every file reads alone.
pub(crate) async fn failing_file(
    plan: &Arc<dyn ExecutionPlan>,
    partition: usize,
    err: &str,
    context: &Arc<TaskContext>,
) -> Option<(String, Error)> {
    let config = file_scan(plan)?;
    // The partition's own files first; then the others, which partitions may take over from
    // each other (DataFusion's work stealing).
    let own = config.file_groups.get(partition)?.files();
    let others = config
        .file_groups
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != partition)
        .flat_map(|(_, g)| g.files());
    let files: Vec<&PartitionedFile> = own.iter().chain(others).collect();
    if files
        .iter()
        .any(|f| err.contains(f.object_meta.location.as_ref()))
    {
        return None;
    }
    for file in files {
        if let Some(e) = read_alone(config, file, context).await {
            return Some((display_path(&file.object_meta.location), e));
        }
    }
    None
}
