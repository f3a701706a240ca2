//! The DataFusion table provider of a Hive table ([`HiveTable`]): planning a scan (partition
//! pruning through the metastore and on partition values, listing the data files through
//! object_store) and an insert (a [`super::sink::HiveSink`] behind DataFusion's `DataSinkExec`).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use super::prune::{metastore_filter, only_keys, prune, typed_value};
use super::scan::{HiveScanExec, PartitionStats, ScanContext, ScanFile};
use super::sink::HiveSink;
use super::text::TextOptions;
use super::{HiveFormat, HiveMetastoreAccess, HiveTableDesc};
use crate::error::{Error, Result};

/// A Hive table's provider (see the module documentation).
#[derive(Debug)]
pub(crate) struct HiveTable {
    desc: HiveTableDesc,
    access: Arc<dyn HiveMetastoreAccess>,
    text: Option<Arc<TextOptions>>,
}

impl HiveTable {
    pub(crate) fn try_new(
        desc: HiveTableDesc,
        access: Arc<dyn HiveMetastoreAccess>,
    ) -> Result<Self> {
        let fields = desc.schema.fields().len();
        if desc.partition_key_count > fields {
            return Err(Error::internal(format!(
                "Hive table {} has {} partition keys but only {fields} columns",
                desc.name, desc.partition_key_count
            )));
        }
        let text = match desc.format {
            HiveFormat::Text => Some(Arc::new(
                TextOptions::from_params(&desc.serde_params)
                    .map_err(|e| e.context(format!("in Hive table {}", desc.name)))?,
            )),
            _ => None,
        };
        parse_location(&desc.location)
            .map_err(|e| e.context(format!("in Hive table {}", desc.name)))?;
        Ok(Self { desc, access, text })
    }

    fn data_columns(&self) -> usize {
        self.desc.schema.fields().len() - self.desc.partition_key_count
    }

    fn keys(&self) -> Vec<Field> {
        self.desc.schema.fields()[self.data_columns()..]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect()
    }

    async fn scan_inner(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<HiveScanExec> {
        let (root_store, root) = resolve(state, &self.desc.location)?;
        let keys = self.keys();
        let mut files = Vec::new();
        let stats = if keys.is_empty() {
            for (path, size) in list_data_files(&root_store, &root).await? {
                files.push(ScanFile {
                    store: Arc::clone(&root_store),
                    path,
                    size,
                    partition: Arc::new(Vec::new()),
                });
            }
            None
        } else {
            let key_filters: Vec<Expr> = filters
                .iter()
                .filter(|f| only_keys(f, &keys))
                .cloned()
                .collect();
            let filter = metastore_filter(&key_filters, &keys);
            let listed = self.access.list_partitions(filter.as_deref()).await?;
            let listed_count = listed.len();
            let partitions = prune(state, &key_filters, &keys, listed)?;
            for p in &partitions {
                if p.values.len() != keys.len() {
                    return Err(Error::external(format!(
                        "the metastore returned partition {:?} with {} values for {} keys",
                        p.values,
                        p.values.len(),
                        keys.len()
                    )));
                }
                let values = p
                    .values
                    .iter()
                    .zip(&keys)
                    .map(|(v, k)| typed_value(v, k.data_type()))
                    .collect::<Result<Vec<_>>>()?;
                let values = Arc::new(values);
                let (store, dir) = resolve(state, &p.location)?;
                for (path, size) in list_data_files(&store, &dir).await? {
                    files.push(ScanFile {
                        store: Arc::clone(&store),
                        path,
                        size,
                        partition: Arc::clone(&values),
                    });
                }
            }
            Some(PartitionStats {
                read: partitions.len(),
                listed: listed_count,
                metastore_filter: filter,
            })
        };
        let target = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<ScanFile>> = vec![Vec::new(); target.min(files.len()).max(1)];
        let n = groups.len();
        for (i, f) in files.into_iter().enumerate() {
            groups[i % n].push(f);
        }
        let projection = match projection {
            Some(p) => p.clone(),
            None => (0..self.desc.schema.fields().len()).collect(),
        };
        let ctx = ScanContext {
            table: self.desc.name.clone(),
            format: self.desc.format,
            table_schema: Arc::clone(&self.desc.schema),
            data_columns: self.data_columns(),
            projection,
            text: self.text.clone(),
            batch_size: state.config().batch_size(),
            limit,
        };
        Ok(HiveScanExec::new(ctx, groups, stats))
    }
}

/// A table or partition location, split the way Hive writes it: `scheme:/path` or
/// `scheme://authority/path`, the path **not** percent-encoded (Hadoop's `Path.toString()`; a
/// partition directory `dt=a%2Fb` is named exactly that on disk), or a bare absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    /// `scheme://authority`, the key of the object store registry.
    pub store_url: String,
    /// The path as written (no leading `/` removed), for messages and local file access.
    pub raw_path: String,
    pub path: ObjectPath,
}

/// Splits a location (see [`Location`]).
///
/// # Errors
/// `Invalid` for a relative path or a location without a path.
pub(crate) fn parse_location(location: &str) -> Result<Location> {
    let bad = |why: &str| Error::invalid(format!("Hive location '{location}' {why}"));
    let (scheme, rest) = if location.starts_with('/') {
        ("file", location)
    } else {
        let (scheme, rest) = location
            .split_once(':')
            .ok_or_else(|| bad("is neither a URL nor an absolute path"))?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(bad("has an invalid scheme"));
        }
        (scheme, rest)
    };
    let (authority, raw_path) = match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        },
        None => ("", rest),
    };
    if !raw_path.starts_with('/') {
        return Err(bad("has no absolute path"));
    }
    let path = join_raw(&ObjectPath::default(), raw_path)
        .map_err(|e| bad(&format!("is not a valid path ({e})")))?;
    Ok(Location {
        store_url: format!("{}://{authority}", scheme.to_ascii_lowercase()),
        raw_path: raw_path.to_string(),
        path,
    })
}

/// `base` joined with the `/`-separated path `rel`, taken as object names verbatim (not
/// percent-encoded: object_store's local file system maps such a path to the file of exactly
/// that name, which is how Hive names `dt=a%2Fb`); empty segments are skipped.
///
/// # Errors
/// `Invalid` for a segment object_store refuses (`.`, `..`, control characters).
pub(crate) fn join_raw(base: &ObjectPath, rel: &str) -> Result<ObjectPath> {
    let mut s = base.as_ref().to_string();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        if !s.is_empty() {
            s.push('/');
        }
        s.push_str(part);
    }
    ObjectPath::parse(&s).map_err(|e| Error::invalid(format!("invalid path '{rel}': {e}")))
}

/// The object store (from the session's registry) and path of a location.
pub(crate) fn resolve(
    state: &dyn Session,
    location: &str,
) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let loc = parse_location(location)?;
    let store_url = ObjectStoreUrl::parse(&loc.store_url)?;
    let store = state.runtime_env().object_store(&store_url).map_err(|e| {
        Error::not_supported(format!(
            "Hive location '{location}': no object store is registered for '{}' ({e})",
            store_url.as_str()
        ))
    })?;
    Ok((store, loc.path))
}

/// Whether a path below `root` passes through a hidden name (`.x` or `_x`: staging directories,
/// `.crc` files, `_SUCCESS`), which readers skip as Hive does.
pub(crate) fn is_hidden_below(root: &ObjectPath, path: &ObjectPath) -> bool {
    match path.prefix_match(root) {
        Some(parts) => parts
            .into_iter()
            .any(|p| p.as_ref().starts_with('.') || p.as_ref().starts_with('_')),
        None => true,
    }
}

/// The visible data files under `dir` (recursively), with their sizes, in name order. A missing
/// directory has none.
pub(crate) async fn list_data_files(
    store: &Arc<dyn ObjectStore>,
    dir: &ObjectPath,
) -> Result<Vec<(ObjectPath, u64)>> {
    let listed: Vec<_> = match store.list(Some(dir)).try_collect().await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(Error::external(format!("cannot list '{dir}': {e}"))),
    };
    let mut files: Vec<(ObjectPath, u64)> = listed
        .into_iter()
        .filter(|m| !is_hidden_below(dir, &m.location))
        .map(|m| (m.location, m.size))
        .collect();
    files.sort();
    Ok(files)
}

#[async_trait::async_trait]
impl TableProvider for HiveTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.desc.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let keys = self.keys();
        Ok(filters
            .iter()
            .map(|f| {
                if only_keys(f, &keys) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = self
            .scan_inner(state, projection, filters, limit)
            .await
            .map_err(|e| {
                DataFusionError::from(
                    e.context(format!("while reading Hive table {}", self.desc.name)),
                )
            })?;
        Ok(Arc::new(plan))
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let overwrite = match insert_op {
            InsertOp::Append => false,
            InsertOp::Overwrite => true,
            InsertOp::Replace => {
                return Err(Error::not_supported(format!(
                    "REPLACE INTO Hive table {} is not supported yet",
                    self.desc.name
                ))
                .into());
            }
        };
        let input_fields = input.schema().fields().len();
        if input_fields != self.desc.schema.fields().len() {
            return Err(Error::internal(format!(
                "INSERT into Hive table {} got {input_fields} columns, expected {}",
                self.desc.name,
                self.desc.schema.fields().len()
            ))
            .into());
        }
        let (store, root) = resolve(state, &self.desc.location)?;
        let sink = HiveSink::try_new(
            self.desc.clone(),
            Arc::clone(&self.access),
            store,
            root,
            self.text.clone(),
            overwrite,
        )?;
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// The schema of a table's data columns (without partition keys).
pub(crate) fn data_schema(desc: &HiveTableDesc) -> SchemaRef {
    let n = desc.schema.fields().len() - desc.partition_key_count.min(desc.schema.fields().len());
    Arc::new(Schema::new(desc.schema.fields()[..n].to_vec()))
}
