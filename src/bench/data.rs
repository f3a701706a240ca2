//! TPC-H data for the bench runner: generated in-process with `tpchgen` / `tpchgen-arrow` and
//! written as Parquet, one directory per table (`<dir>/lineitem/part-0.parquet`, ...). The
//! bench runner then registers each directory with a `CREATE TABLE ... WITH ('connector' =
//! 'filesystem', 'format' = 'parquet')` statement, exactly as a user would.
//!
//! Generation happens once per directory: a marker file records the scale factor, and a
//! directory with a matching marker is reused as is.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

use crate::error::{Error, Result};

/// The eight TPC-H tables, in the order they are generated and registered.
pub const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// Name of the marker file written once a data set is complete.
const MARKER: &str = "_weir_tpch_complete";

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 1_000_000;

/// Rows per generated Arrow batch.
const BATCH_ROWS: usize = 64 * 1024;

/// The Arrow schema of a TPC-H table, as `tpchgen-arrow` produces it.
pub fn table_schema(table: &str) -> Result<SchemaRef> {
    Ok(match table {
        "region" => RegionArrow::schema_ref(),
        "nation" => NationArrow::schema_ref(),
        "supplier" => SupplierArrow::schema_ref(),
        "customer" => CustomerArrow::schema_ref(),
        "part" => PartArrow::schema_ref(),
        "partsupp" => PartSuppArrow::schema_ref(),
        "orders" => OrderArrow::schema_ref(),
        "lineitem" => LineItemArrow::schema_ref(),
        other => return Err(Error::invalid(format!("'{other}' is not a TPC-H table"))),
    })
}

/// The Flink `CREATE TABLE` statement registering one generated table stored under `dir`.
pub fn create_table_sql(table: &str, dir: &Path) -> Result<String> {
    parquet_table_sql("TPC-H", table, &table_schema(table)?, dir, false)
}

/// A Flink `CREATE TABLE` over the Parquet files in `<dir>/<table>` with `schema`'s columns;
/// `strict` quotes names with backticks and declares non-nullable columns `NOT NULL`.
/// `benchmark` names the data set in errors.
///
/// # Errors
/// `Internal` for a column type a generator should not produce.
pub(crate) fn parquet_table_sql(
    benchmark: &str,
    table: &str,
    schema: &SchemaRef,
    dir: &Path,
    strict: bool,
) -> Result<String> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let ty = match field.data_type() {
            DataType::Int64 => "BIGINT".to_string(),
            DataType::Int32 => "INT".to_string(),
            DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "STRING".to_string(),
            DataType::Date32 => "DATE".to_string(),
            other => {
                return Err(Error::internal(format!(
                    "{benchmark} column {table}.{} has unexpected type {other}",
                    field.name()
                )));
            }
        };
        columns.push(if strict {
            let not_null = if field.is_nullable() { "" } else { " NOT NULL" };
            format!("  `{}` {ty}{not_null}", field.name())
        } else {
            format!("  {} {ty}", field.name())
        });
    }
    let path = dir.join(table);
    let path = path.to_string_lossy().replace('\'', "''");
    Ok(format!(
        "CREATE TABLE {table} (\n{}\n) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'parquet')",
        columns.join(",\n")
    ))
}

/// The default data directory for a scale factor: `~/.weir/bench/tpch-sf<SF>`.
pub fn default_data_dir(scale: f64) -> Result<PathBuf> {
    bench_data_dir("tpch", scale)
}

/// `~/.weir/bench/<name>-sf<SF>`.
///
/// # Errors
/// `Invalid` when the home directory cannot be found.
pub(crate) fn bench_data_dir(name: &str, scale: f64) -> Result<PathBuf> {
    let home = dirs::home_dir().ok_or_else(|| {
        Error::invalid("cannot find the home directory; pass the data directory with --data DIR")
    })?;
    Ok(home
        .join(".weir")
        .join("bench")
        .join(format!("{name}-sf{}", format_scale(scale))))
}

/// A scale factor as written in directory names and reports: `1`, `0.01`, `10`.
pub fn format_scale(scale: f64) -> String {
    format!("{scale}")
}

/// Checks a scale factor: positive and finite.
pub fn check_scale(scale: f64) -> Result<()> {
    check_scale_of("TPC-H", scale)
}

/// Checks a scale factor of `benchmark` (named in the error): positive and finite.
///
/// # Errors
/// `Invalid` for zero, negative, infinite or NaN scale factors.
pub(crate) fn check_scale_of(benchmark: &str, scale: f64) -> Result<()> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "the {benchmark} scale factor must be a positive number, got {scale}"
        )))
    }
}

/// The completion marker of a generated data set: a file named `name` in the data directory
/// holding the scale factor, written last, so that a complete directory is reused and an
/// interrupted one is generated again.
pub(crate) struct Marker<'a> {
    /// The benchmark's display name, for errors.
    pub benchmark: &'a str,
    /// The data directory.
    pub dir: &'a Path,
    /// The marker file's name.
    pub name: &'a str,
    /// The scale factor wanted.
    pub scale: f64,
}

impl Marker<'_> {
    /// Whether the directory already holds the complete data set of this scale factor; when not,
    /// creates the directory for generation.
    ///
    /// # Errors
    /// `Invalid` (after checking the scale factor) for a bad scale factor or a directory holding
    /// data of another scale; `External` on I/O errors.
    pub(crate) fn is_complete(&self) -> Result<bool> {
        check_scale_of(self.benchmark, self.scale)?;
        let marker = self.dir.join(self.name);
        let wanted = format_scale(self.scale);
        match std::fs::read_to_string(&marker) {
            Ok(found) if found.trim() == wanted => return Ok(true),
            Ok(found) => {
                return Err(Error::invalid(format!(
                    "{} holds {} data of scale factor {}, not {wanted}; choose another --data directory",
                    self.dir.display(),
                    self.benchmark,
                    found.trim()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("cannot read {}", marker.display()), e)),
        }
        std::fs::create_dir_all(self.dir)
            .map_err(|e| Error::io(format!("cannot create {}", self.dir.display()), e))?;
        Ok(false)
    }

    /// Writes the marker: the data set is complete.
    ///
    /// # Errors
    /// `External` when the file cannot be written.
    pub(crate) fn write(&self) -> Result<()> {
        let marker = self.dir.join(self.name);
        std::fs::write(&marker, format_scale(self.scale))
            .map_err(|e| Error::io(format!("cannot write {}", marker.display()), e))
    }
}

/// Empties (or creates) the directory of one table: files left over from an interrupted run
/// are removed so the table is generated afresh.
///
/// # Errors
/// `External` on I/O errors.
pub(crate) fn fresh_table_dir(table_dir: &Path) -> Result<()> {
    if table_dir.exists() {
        std::fs::remove_dir_all(table_dir)
            .map_err(|e| Error::io(format!("cannot remove {}", table_dir.display()), e))?;
    }
    std::fs::create_dir_all(table_dir)
        .map_err(|e| Error::io(format!("cannot create {}", table_dir.display()), e))
}

/// Runs `work` on every job, on up to `threads` threads, calling `on_done(done, total)` after
/// each finished job; the first error wins. `benchmark` names the data set if a thread panics.
///
/// # Errors
/// The first error of `work`; `Internal` when a generator thread panicked.
pub(crate) fn run_jobs<J: Sync>(
    benchmark: &str,
    jobs: &[J],
    threads: usize,
    on_done: &(dyn Fn(usize, usize) + Sync),
    work: &(dyn Fn(&J) -> Result<()> + Sync),
) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1).min(jobs.len()))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            return Ok(());
                        };
                        work(job)?;
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        on_done(n, jobs.len());
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::internal(format!(
                        "a {benchmark} generator thread panicked"
                    )))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// What [`ensure_data`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStatus {
    /// A complete data set of this scale was already there.
    Reused,
    /// The data set was generated now.
    Generated,
}

/// Makes sure `dir` holds the TPC-H data set of `scale` as Parquet: reuses a complete one, else
/// (re)generates every table. `threads` bounds how many files are generated at once.
///
/// # Errors
/// `Invalid` when `dir` holds a data set of another scale; `External` on I/O or Parquet errors.
pub fn ensure_data(dir: &Path, scale: f64, threads: usize) -> Result<DataStatus> {
    ensure_data_with_progress(dir, scale, threads, &|_, _| {})
}

/// [`ensure_data`], calling `on_file(done, total)` after each generated Parquet file.
///
/// # Errors
/// As [`ensure_data`].
pub fn ensure_data_with_progress(
    dir: &Path,
    scale: f64,
    threads: usize,
    on_file: &(dyn Fn(usize, usize) + Sync),
) -> Result<DataStatus> {
    let marker = Marker {
        benchmark: "TPC-H",
        dir,
        name: MARKER,
        scale,
    };
    if marker.is_complete()? {
        return Ok(DataStatus::Reused);
    }

    // Large tables are split into several files so they can be generated in parallel.
    let parts = (scale.ceil() as i32).max(1);
    let mut jobs: Vec<(&'static str, i32, i32)> = Vec::new();
    for table in TABLES {
        let n = match table {
            "region" | "nation" | "supplier" => 1,
            _ => parts,
        };
        fresh_table_dir(&dir.join(table))?;
        for part in 1..=n {
            jobs.push((table, part, n));
        }
    }
    run_jobs("TPC-H", &jobs, threads, on_file, &|&(
        table,
        part,
        parts,
    )| {
        generate_part(dir, scale, table, part, parts)
    })?;
    marker.write()?;
    Ok(DataStatus::Generated)
}

/// Generates part `part` of `parts` of one table into `<dir>/<table>/part-<part>.parquet`.
fn generate_part(dir: &Path, scale: f64, table: &str, part: i32, parts: i32) -> Result<()> {
    let batches: Box<dyn Iterator<Item = std::result::Result<RecordBatch, _>>> = match table {
        "region" => Box::new(
            RegionArrow::new(RegionGenerator::new(scale, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        "nation" => Box::new(
            NationArrow::new(NationGenerator::new(scale, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        "supplier" => Box::new(
            SupplierArrow::new(SupplierGenerator::new(scale, part, parts))
                .with_batch_size(BATCH_ROWS),
        ),
        "customer" => Box::new(
            CustomerArrow::new(CustomerGenerator::new(scale, part, parts))
                .with_batch_size(BATCH_ROWS),
        ),
        "part" => Box::new(
            PartArrow::new(PartGenerator::new(scale, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        "partsupp" => Box::new(
            PartSuppArrow::new(PartSuppGenerator::new(scale, part, parts))
                .with_batch_size(BATCH_ROWS),
        ),
        "orders" => Box::new(
            OrderArrow::new(OrderGenerator::new(scale, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        "lineitem" => Box::new(
            LineItemArrow::new(LineItemGenerator::new(scale, part, parts))
                .with_batch_size(BATCH_ROWS),
        ),
        other => return Err(Error::invalid(format!("'{other}' is not a TPC-H table"))),
    };
    let path = dir.join(table).join(format!("part-{part}.parquet"));
    write_parquet(&path, table_schema(table)?, ROW_GROUP_ROWS, batches)
}

/// Writes `batches` as one Parquet file at `path` (Snappy, row groups of `row_group_rows`), first
/// under a `.tmp` name renamed into place when complete, so a reader never sees a partial file.
///
/// # Errors
/// `External` for a generator or writer error, `Io` for the file system.
pub(crate) fn write_parquet<E: std::fmt::Display>(
    path: &Path,
    schema: SchemaRef,
    row_group_rows: usize,
    batches: impl IntoIterator<Item = std::result::Result<RecordBatch, E>>,
) -> Result<()> {
    let tmp = path.with_extension("parquet.tmp");
    let file =
        File::create(&tmp).map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_compression(Compression::SNAPPY)
        .build();
    let describe = |e: &dyn std::fmt::Display| {
        Error::external(format!("cannot write {}: {e}", path.display()))
    };
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| describe(&e))?;
    for batch in batches {
        let batch = batch.map_err(|e| describe(&e))?;
        writer.write(&batch).map_err(|e| describe(&e))?;
    }
    writer.close().map_err(|e| describe(&e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::io(format!("cannot rename {}", tmp.display()), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_table_maps_types() -> Result<()> {
        let sql = create_table_sql("lineitem", Path::new("/data/tpch"))?;
        assert!(sql.starts_with("CREATE TABLE lineitem ("), "{sql}");
        assert!(sql.contains("l_orderkey BIGINT"), "{sql}");
        assert!(sql.contains("l_linenumber INT"), "{sql}");
        assert!(sql.contains("l_quantity DECIMAL(15, 2)"), "{sql}");
        assert!(sql.contains("l_shipdate DATE"), "{sql}");
        assert!(sql.contains("l_comment STRING"), "{sql}");
        assert!(sql.contains("'path' = '/data/tpch/lineitem'"), "{sql}");
        assert!(create_table_sql("nope", Path::new("/x")).is_err());
        Ok(())
    }

    #[test]
    fn scale_checks_and_names() {
        assert!(check_scale(0.01).is_ok());
        assert!(check_scale(0.0).is_err());
        assert!(check_scale(f64::NAN).is_err());
        assert_eq!(format_scale(1.0), "1");
        assert_eq!(format_scale(0.01), "0.01");
    }

    #[test]
    fn generates_once_and_reuses() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        // A tiny scale keeps the test fast; nation and region are fixed-size.
        assert_eq!(ensure_data(dir.path(), 0.001, 2)?, DataStatus::Generated);
        for table in TABLES {
            assert!(
                dir.path().join(table).join("part-1.parquet").is_file(),
                "{table}"
            );
        }
        assert_eq!(ensure_data(dir.path(), 0.001, 2)?, DataStatus::Reused);
        let err = ensure_data(dir.path(), 0.002, 2).err();
        assert!(err.is_some_and(|e| e.message.contains("scale factor 0.001")));
        Ok(())
    }
}
