//! TPC-DS data for the bench runner: generated in-process with `tpcdsgen` / `tpcdsgen-arrow`
//! (TPC-DS v4, the C `dsdgen` compatible output) and written as Parquet, one directory per
//! table (`<dir>/store_sales/part-1.parquet`, ...). The bench runner then registers each
//! directory with a `CREATE TABLE ... WITH ('connector' = 'filesystem', 'format' = 'parquet')`
//! statement ([`create_table_sql`]), exactly as a user would.
//!
//! Generation happens once per directory: a marker file records the scale factor, and a
//! directory with a matching marker is reused as is. Each file is written under a temporary
//! name and renamed when complete, so an interrupted run never leaves a file that looks whole.

use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use tpcdsgen::config::{Session as GenSession, SessionBuilder};
use tpcdsgen_arrow::{
    CallCenterArrow, CatalogPageArrow, CatalogReturnsArrow, CatalogSalesArrow,
    CustomerAddressArrow, CustomerArrow, CustomerDemographicsArrow, DateDimArrow,
    HouseholdDemographicsArrow, IncomeBandArrow, InventoryArrow, ItemArrow, PromotionArrow,
    ReasonArrow, ShipModeArrow, StoreArrow, StoreReturnsArrow, StoreSalesArrow, TimeDimArrow,
    WarehouseArrow, WebPageArrow, WebReturnsArrow, WebSalesArrow, WebSiteArrow,
};

use crate::bench::data::{
    DataStatus, Marker, bench_data_dir, check_scale_of, fresh_table_dir, parquet_table_sql,
    run_jobs, write_parquet,
};
use crate::error::{Error, Result};

/// The 24 TPC-DS tables the queries read (the `dbgen_version` metadata table is not
/// generated), largest first so that parallel generation finishes early.
pub const TABLES: [&str; 24] = [
    "inventory",
    "store_sales",
    "store_returns",
    "catalog_sales",
    "catalog_returns",
    "web_sales",
    "web_returns",
    "customer_demographics",
    "customer",
    "customer_address",
    "date_dim",
    "time_dim",
    "item",
    "catalog_page",
    "household_demographics",
    "promotion",
    "web_page",
    "store",
    "reason",
    "income_band",
    "call_center",
    "web_site",
    "warehouse",
    "ship_mode",
];

/// Name of the marker file written once a data set is complete.
const MARKER: &str = "_weir_tpcds_complete";

/// Rows per Parquet row group: small enough that the large fact tables split into several row
/// groups (parallel scans, pruning), large enough to compress well.
const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Rows per generated Arrow batch.
const BATCH_ROWS: usize = 32 * 1024;

/// The Arrow schema of a TPC-DS table, as `tpcdsgen-arrow` produces it.
///
/// # Errors
/// `Invalid` when `table` is not one of [`TABLES`].
pub fn table_schema(table: &str) -> Result<SchemaRef> {
    Ok(match table {
        "call_center" => CallCenterArrow::schema_ref(),
        "catalog_page" => CatalogPageArrow::schema_ref(),
        "catalog_returns" => CatalogReturnsArrow::schema_ref(),
        "catalog_sales" => CatalogSalesArrow::schema_ref(),
        "customer" => CustomerArrow::schema_ref(),
        "customer_address" => CustomerAddressArrow::schema_ref(),
        "customer_demographics" => CustomerDemographicsArrow::schema_ref(),
        "date_dim" => DateDimArrow::schema_ref(),
        "household_demographics" => HouseholdDemographicsArrow::schema_ref(),
        "income_band" => IncomeBandArrow::schema_ref(),
        "inventory" => InventoryArrow::schema_ref(),
        "item" => ItemArrow::schema_ref(),
        "promotion" => PromotionArrow::schema_ref(),
        "reason" => ReasonArrow::schema_ref(),
        "ship_mode" => ShipModeArrow::schema_ref(),
        "store" => StoreArrow::schema_ref(),
        "store_returns" => StoreReturnsArrow::schema_ref(),
        "store_sales" => StoreSalesArrow::schema_ref(),
        "time_dim" => TimeDimArrow::schema_ref(),
        "warehouse" => WarehouseArrow::schema_ref(),
        "web_page" => WebPageArrow::schema_ref(),
        "web_returns" => WebReturnsArrow::schema_ref(),
        "web_sales" => WebSalesArrow::schema_ref(),
        "web_site" => WebSiteArrow::schema_ref(),
        other => return Err(Error::invalid(format!("'{other}' is not a TPC-DS table"))),
    })
}

/// The Flink `CREATE TABLE` statement registering one generated table stored under `dir`.
///
/// # Errors
/// `Invalid` for an unknown table; `Internal` if the generator produced an unexpected type.
pub fn create_table_sql(table: &str, dir: &Path) -> Result<String> {
    parquet_table_sql("TPC-DS", table, &table_schema(table)?, dir, true)
}

/// The default data directory for a scale factor: `~/.weir/bench/tpcds-sf<SF>`.
///
/// # Errors
/// `Invalid` when the home directory cannot be found.
pub fn default_data_dir(scale: f64) -> Result<PathBuf> {
    bench_data_dir("tpcds", scale)
}

/// Checks a scale factor: positive and finite.
///
/// # Errors
/// `Invalid` for zero, negative, infinite or NaN scale factors.
pub fn check_scale(scale: f64) -> Result<()> {
    check_scale_of("TPC-DS", scale)
}

/// Makes sure `dir` holds the TPC-DS data set of `scale` as Parquet: reuses a complete one,
/// else (re)generates every table, calling `on_file(done, total)` after each table's file.
/// `threads` bounds how many tables are generated at once.
///
/// # Errors
/// `Invalid` when `dir` holds a data set of another scale; `External` on generator, I/O or
/// Parquet errors.
pub fn ensure_data(
    dir: &Path,
    scale: f64,
    threads: usize,
    on_file: &(dyn Fn(usize, usize) + Sync),
) -> Result<DataStatus> {
    let marker = Marker {
        benchmark: "TPC-DS",
        dir,
        name: MARKER,
        scale,
    };
    if marker.is_complete()? {
        return Ok(DataStatus::Reused);
    }
    let session = SessionBuilder::new()
        .with_scale_factor(scale)
        .build()
        .map_err(|e| Error::invalid(format!("TPC-DS scale factor {scale}: {e}")))?;
    for table in TABLES {
        fresh_table_dir(&dir.join(table))?;
    }
    run_jobs("TPC-DS", &TABLES, threads, on_file, &|&table| {
        generate_table(dir, session.clone(), table)
    })?;
    marker.write()?;
    Ok(DataStatus::Generated)
}

type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>>>;

/// The batch iterator generating one whole table.
fn generator(session: GenSession, table: &str) -> Result<Batches> {
    Ok(match table {
        "call_center" => Box::new(CallCenterArrow::new(session).with_batch_size(BATCH_ROWS)),
        "catalog_page" => Box::new(CatalogPageArrow::new(session).with_batch_size(BATCH_ROWS)),
        "catalog_returns" => {
            Box::new(CatalogReturnsArrow::new(session).with_batch_size(BATCH_ROWS))
        }
        "catalog_sales" => Box::new(CatalogSalesArrow::new(session).with_batch_size(BATCH_ROWS)),
        "customer" => Box::new(CustomerArrow::new(session).with_batch_size(BATCH_ROWS)),
        "customer_address" => {
            Box::new(CustomerAddressArrow::new(session).with_batch_size(BATCH_ROWS))
        }
        "customer_demographics" => {
            Box::new(CustomerDemographicsArrow::new(session).with_batch_size(BATCH_ROWS))
        }
        "date_dim" => Box::new(DateDimArrow::new(session).with_batch_size(BATCH_ROWS)),
        "household_demographics" => {
            Box::new(HouseholdDemographicsArrow::new(session).with_batch_size(BATCH_ROWS))
        }
        "income_band" => Box::new(IncomeBandArrow::new(session).with_batch_size(BATCH_ROWS)),
        "inventory" => Box::new(InventoryArrow::new(session).with_batch_size(BATCH_ROWS)),
        "item" => Box::new(ItemArrow::new(session).with_batch_size(BATCH_ROWS)),
        "promotion" => Box::new(PromotionArrow::new(session).with_batch_size(BATCH_ROWS)),
        "reason" => Box::new(ReasonArrow::new(session).with_batch_size(BATCH_ROWS)),
        "ship_mode" => Box::new(ShipModeArrow::new(session).with_batch_size(BATCH_ROWS)),
        "store" => Box::new(StoreArrow::new(session).with_batch_size(BATCH_ROWS)),
        "store_returns" => Box::new(StoreReturnsArrow::new(session).with_batch_size(BATCH_ROWS)),
        "store_sales" => Box::new(StoreSalesArrow::new(session).with_batch_size(BATCH_ROWS)),
        "time_dim" => Box::new(TimeDimArrow::new(session).with_batch_size(BATCH_ROWS)),
        "warehouse" => Box::new(WarehouseArrow::new(session).with_batch_size(BATCH_ROWS)),
        "web_page" => Box::new(WebPageArrow::new(session).with_batch_size(BATCH_ROWS)),
        "web_returns" => Box::new(WebReturnsArrow::new(session).with_batch_size(BATCH_ROWS)),
        "web_sales" => Box::new(WebSalesArrow::new(session).with_batch_size(BATCH_ROWS)),
        "web_site" => Box::new(WebSiteArrow::new(session).with_batch_size(BATCH_ROWS)),
        other => return Err(Error::invalid(format!("'{other}' is not a TPC-DS table"))),
    })
}

/// Generates one table into `<dir>/<table>/part-1.parquet`.
fn generate_table(dir: &Path, session: GenSession, table: &str) -> Result<()> {
    let batches = generator(session, table)?;
    let path = dir.join(table).join("part-1.parquet");
    write_parquet(&path, table_schema(table)?, ROW_GROUP_ROWS, batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_table_maps_types() -> Result<()> {
        let sql = create_table_sql("store_sales", Path::new("/data/tpcds"))?;
        assert!(sql.starts_with("CREATE TABLE store_sales ("), "{sql}");
        assert!(sql.contains("`ss_item_sk` INT NOT NULL"), "{sql}");
        assert!(sql.contains("`ss_sold_date_sk` INT,"), "{sql}");
        assert!(sql.contains("`ss_ticket_number` BIGINT NOT NULL"), "{sql}");
        assert!(sql.contains("`ss_net_profit` DECIMAL(7, 2)"), "{sql}");
        assert!(sql.contains("'path' = '/data/tpcds/store_sales'"), "{sql}");
        let dates = create_table_sql("date_dim", Path::new("/d"))?;
        assert!(dates.contains("`d_date` DATE"), "{dates}");
        assert!(dates.contains("`d_day_name` STRING"), "{dates}");
        assert!(create_table_sql("nope", Path::new("/x")).is_err());
        for table in TABLES {
            create_table_sql(table, Path::new("/x"))?;
        }
        Ok(())
    }

    #[test]
    fn scale_checks_and_default_dir() -> Result<()> {
        assert!(check_scale(0.01).is_ok());
        assert!(check_scale(0.0).is_err());
        assert!(check_scale(f64::NAN).is_err());
        assert!(ensure_data(Path::new("/nonexistent"), -1.0, 1, &|_, _| {}).is_err());
        assert!(default_data_dir(1.0)?.ends_with("bench/tpcds-sf1"));
        Ok(())
    }

    #[test]
    fn refuses_a_directory_of_another_scale() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        std::fs::write(dir.path().join(MARKER), "0.5").map_err(|e| Error::io("marker", e))?;
        assert_eq!(
            ensure_data(dir.path(), 0.5, 1, &|_, _| {})?,
            DataStatus::Reused
        );
        let err = ensure_data(dir.path(), 0.01, 1, &|_, _| {}).err();
        assert!(err.is_some_and(|e| e.message.contains("scale factor 0.5")));
        Ok(())
    }
}
