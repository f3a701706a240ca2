//! [`HivePartitionAccess`]: the Hive connector's window on one table's partitions in the
//! metastore. Scans list partitions (with a `get_partitions_by_filter` filter, so the metastore
//! prunes), inserts register the partitions they wrote.
//!
//! Data path: Hive connector scan / insert → [`HiveMetastoreAccess`] → [`Metastore::call`] →
//! Thrift `get_partitions[_by_filter]` / `add_partitions_req`.

use std::sync::Arc;

use async_trait::async_trait;
use hive_metastore::{AddPartitionsRequest, Partition, StorageDescriptor};

use super::client::Metastore;
use crate::connectors::hive::{HiveMetastoreAccess, HivePartition};
use crate::error::Result;

/// Partition listing and registration for one table.
#[derive(Debug)]
pub struct HivePartitionAccess {
    metastore: Arc<Metastore>,
    database: String,
    table: String,
    /// The table's storage descriptor: new partitions get a copy with their own location.
    sd: Option<StorageDescriptor>,
}

impl HivePartitionAccess {
    pub(super) fn new(
        metastore: Arc<Metastore>,
        database: &str,
        table: &str,
        sd: Option<StorageDescriptor>,
    ) -> Self {
        Self {
            metastore,
            database: database.to_string(),
            table: table.to_string(),
            sd,
        }
    }

    fn what(&self, action: &str) -> String {
        format!("{action} of `{}`.`{}`", self.database, self.table)
    }
}

fn to_hive_partition(p: Partition) -> HivePartition {
    HivePartition {
        values: p
            .values
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.to_string())
            .collect(),
        location: p
            .sd
            .and_then(|sd| sd.location)
            .map(|l| l.to_string())
            .unwrap_or_default(),
    }
}

#[async_trait]
impl HiveMetastoreAccess for HivePartitionAccess {
    async fn list_partitions(&self, filter: Option<&str>) -> Result<Vec<HivePartition>> {
        let (db, table) = (self.database.clone(), self.table.clone());
        let parts = match filter {
            Some(f) if !f.trim().is_empty() => {
                let f = f.to_string();
                self.metastore
                    .call(
                        &self.what(&format!("list partitions matching '{f}'")),
                        |c| async move {
                            c.get_partitions_by_filter(db.into(), table.into(), f.into(), -1)
                                .await
                        },
                    )
                    .await?
            }
            _ => {
                self.metastore
                    .call(&self.what("list partitions"), |c| async move {
                        c.get_partitions(db.into(), table.into(), -1).await
                    })
                    .await?
            }
        };
        let mut out: Vec<HivePartition> = parts.into_iter().map(to_hive_partition).collect();
        out.sort_by(|a, b| a.values.cmp(&b.values));
        Ok(out)
    }

    async fn add_partitions(&self, partitions: Vec<HivePartition>) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i32)
            .unwrap_or(0);
        let parts: Vec<Partition> = partitions
            .into_iter()
            .map(|p| {
                let mut sd = self.sd.clone().unwrap_or_default();
                sd.location = Some(p.location.into());
                Partition {
                    values: Some(p.values.into_iter().map(Into::into).collect()),
                    db_name: Some(self.database.clone().into()),
                    table_name: Some(self.table.clone().into()),
                    create_time: Some(now),
                    last_access_time: Some(0),
                    sd: Some(sd),
                    parameters: Some(Default::default()),
                    privileges: None,
                    cat_name: None,
                }
            })
            .collect();
        let n = parts.len();
        let request = AddPartitionsRequest {
            db_name: self.database.clone().into(),
            tbl_name: self.table.clone().into(),
            parts,
            if_not_exists: true,
            need_result: Some(false),
            cat_name: None,
        };
        self.metastore
            .call(&self.what(&format!("add {n} partitions")), |c| async move {
                c.add_partitions_req(request).await
            })
            .await?;
        self.metastore.invalidate();
        Ok(())
    }
}
