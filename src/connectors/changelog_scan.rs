//! The read side of `'format' = 'debezium-json'` filesystem tables. Where it sits in the data
//! path: `FilesystemTable::scan` (batch) and the streaming planner (`stream::lower`, through
//! `connectors::changelog_scan`) come here instead of DataFusion's listing table; lines are
//! decoded by `debezium::Decoder`.
//!
//! **Splits.** The files `part-<writer>-<n>.json` of one writer (one instance of a streaming
//! sink across restores, or one batch `INSERT`) form one split, read in the order of `n`, so a
//! writer's changes are read in the order they were written; any other file is a split of its
//! own. Splits are ordered by the modification time of their oldest file, then by name (the order
//! of two writers is only known that well).
//!
//! **Batch** reads give the *materialized* table: every split's changes, in that order, are
//! applied to a multiset of rows with signed counts, and the rows left are returned (each as many
//! times as its count, in the order they were first added). With signed counts the result does
//! not depend on the order of the splits, only the row order does; a row removed more often than
//! added fails the read.
//!
//! **Streaming** reads give the changelog: each split is one split of the source (read in order
//! by one instance); batches carry their row kinds in a trailing `ROW_KIND_COLUMN`, which the
//! source turns into changes (`stream::source`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::debezium::Decoder;
use super::filesystem::{FilesystemTable, Format};
use super::stream_exec::StreamExec;
use crate::error::{Error, Result};
use crate::stream::changes::{Changes, kind_field};

/// Lines decoded at a time.
const CHUNK_LINES: usize = 4096;

/// What a scan of a debezium-json table reads: its files in splits, and how to decode them.
#[derive(Debug, Clone)]
pub(crate) struct ChangelogFiles {
    pub table: String,
    pub decoder: Arc<Decoder>,
    pub splits: Vec<Vec<PathBuf>>,
}

/// The files of a `debezium-json` table and their decoder (`None` for other formats).
///
/// # Errors
/// `External` when the table's path does not exist or cannot be listed.
pub(crate) fn files_of(table: &FilesystemTable) -> Result<Option<ChangelogFiles>> {
    let config = &table.config;
    if config.format != Format::DebeziumJson {
        return Ok(None);
    }
    if !config.path.exists() {
        return Err(Error::external(format!(
            "path '{}' of table `{}` does not exist",
            config.path.display(),
            table.name
        )));
    }
    Ok(Some(ChangelogFiles {
        table: table.name.clone(),
        decoder: Arc::new(Decoder::new(
            Arc::clone(&table.layout.data_schema),
            &config.debezium,
        )),
        splits: splits(table.data_files()?),
    }))
}

/// The writer and number of a file named `part-<writer>-<n>[.ext]`.
fn writer_of(path: &Path) -> Option<(String, u64)> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("part-")?;
    let (writer, tail) = rest.rsplit_once('-')?;
    let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
    if writer.is_empty() || digits.is_empty() {
        return None;
    }
    Some((writer.to_string(), digits.parse().ok()?))
}

/// A split being grouped: its oldest modification time, its first name, its (number, file)s.
type Group = (SystemTime, PathBuf, Vec<(u64, PathBuf)>);

/// Groups files into splits (see the module documentation).
pub(crate) fn splits(files: Vec<PathBuf>) -> Vec<Vec<PathBuf>> {
    let modified = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut by_writer: HashMap<(PathBuf, String), usize> = HashMap::new();
    for file in files {
        let time = modified(&file);
        let writer = writer_of(&file).map(|(w, n)| {
            (
                (file.parent().map(Path::to_path_buf).unwrap_or_default(), w),
                n,
            )
        });
        match writer {
            Some((key, n)) => match by_writer.get(&key) {
                Some(&g) => {
                    let group = &mut groups[g];
                    group.0 = group.0.min(time);
                    if file < group.1 {
                        group.1 = file.clone();
                    }
                    group.2.push((n, file));
                }
                None => {
                    by_writer.insert(key, groups.len());
                    groups.push((time, file.clone(), vec![(n, file)]));
                }
            },
            None => groups.push((time, file.clone(), vec![(0, file)])),
        }
    }
    groups.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    groups
        .into_iter()
        .map(|(_, _, mut files)| {
            files.sort();
            files.into_iter().map(|(_, f)| f).collect()
        })
        .collect()
}

/// The changes of one split's files, in order, with the columns `projection` (all when `None`).
fn read_split(
    files: Vec<PathBuf>,
    decoder: Arc<Decoder>,
    projection: Option<Arc<[usize]>>,
) -> BoxStream<'static, Result<Changes>> {
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(h) => h,
        Err(_) => {
            return futures::stream::once(async {
                Err(Error::internal(
                    "a debezium-json scan must run inside the Tokio runtime",
                ))
            })
            .boxed();
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    handle.spawn_blocking(move || {
        for file in &files {
            let sent = read_file(file, &decoder, |changes| {
                let changes = match (&projection, changes) {
                    (Some(p), Ok(c)) => c
                        .data
                        .project(p)
                        .map(|data| c.with_data(data))
                        .map_err(Error::from),
                    (_, c) => c,
                };
                let failed = changes.is_err();
                tx.blocking_send(changes).is_ok() && !failed
            });
            if !sent {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}

/// Decodes `file` in chunks of lines, handing each chunk's changes to `send`, until the end or
/// until `send` returns false (it was given an error, or nobody listens any more). Returns
/// whether the file was read to its end.
fn read_file(
    file: &Path,
    decoder: &Decoder,
    mut send: impl FnMut(Result<Changes>) -> bool,
) -> bool {
    let reader = match File::open(file) {
        Ok(f) => BufReader::new(f),
        Err(e) => {
            send(Err(Error::io(
                format!("cannot open '{}'", file.display()),
                e,
            )));
            return false;
        }
    };
    let mut lines = reader.split(b'\n');
    let mut chunk: Vec<(usize, String)> = Vec::with_capacity(CHUNK_LINES);
    let mut number = 0usize;
    loop {
        let line = match lines.next() {
            None => None,
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(e)) => {
                send(Err(Error::io(
                    format!("cannot read '{}'", file.display()),
                    e,
                )));
                return false;
            }
        };
        let end = line.is_none();
        if let Some(mut bytes) = line {
            number += 1;
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            match String::from_utf8(bytes) {
                Ok(text) => chunk.push((number, text)),
                Err(_) => {
                    if let Err(e) = decoder.bad_line(file, number, "not valid UTF-8") {
                        send(Err(e));
                        return false;
                    }
                }
            }
        }
        if chunk.len() >= CHUNK_LINES || (end && !chunk.is_empty()) {
            let changes = decoder.decode(file, &chunk);
            chunk.clear();
            let skip = changes.as_ref().is_ok_and(Changes::is_empty);
            if !skip && !send(changes) {
                return false;
            }
        }
        if end {
            return true;
        }
    }
}

/// The schema of `schema` projected.
fn projected(schema: &SchemaRef, projection: Option<&Vec<usize>>) -> Result<SchemaRef> {
    Ok(match projection {
        Some(p) => Arc::new(schema.project(p)?),
        None => Arc::clone(schema),
    })
}

/// The batch scan: the materialized table (see the module documentation), one partition.
pub(crate) fn materialized_plan(
    files: ChangelogFiles,
    projection: Option<&Vec<usize>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = projected(files.decoder.schema(), projection)?;
    let detail = format!(
        "table={}, format=debezium-json, files={}, materialized",
        files.table,
        files.splits.iter().map(Vec::len).sum::<usize>()
    );
    let projection: Option<Arc<[usize]>> = projection.map(|p| p.as_slice().into());
    let out_schema = Arc::clone(&schema);
    let open = Arc::new(
        move |_partition: usize, ctx: Arc<datafusion::execution::TaskContext>| {
            let batch_size = ctx.session_config().batch_size().max(1);
            let files = files.clone();
            let projection = projection.clone();
            let schema = Arc::clone(&out_schema);
            let batches = futures::stream::once(async move {
                materialize(files, projection, schema, batch_size)
                    .await
                    .map(|b| futures::stream::iter(b.into_iter().map(Ok)))
                    .map_err(DataFusionError::from)
            })
            .try_flatten();
            Ok(Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&out_schema),
                batches,
            )) as _)
        },
    );
    Ok(Arc::new(StreamExec::new(
        "DebeziumMaterializeExec",
        detail,
        schema,
        1,
        true,
        open,
    )))
}

async fn materialize(
    files: ChangelogFiles,
    projection: Option<Arc<[usize]>>,
    schema: SchemaRef,
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let mut set = Multiset::new(Arc::clone(&schema))?;
    for split in files.splits {
        let mut changes = read_split(split, Arc::clone(&files.decoder), projection.clone());
        while let Some(c) = changes.next().await {
            set.apply(&c?)?;
        }
    }
    set.finish(&files.table, batch_size)
}

/// The streaming scan: the changelog, one partition per split, each batch with a trailing row
/// kind column.
pub(crate) fn changelog_plan(
    files: ChangelogFiles,
    projection: Option<&Vec<usize>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let data_schema = projected(files.decoder.schema(), projection)?;
    let mut fields: Vec<_> = data_schema.fields().iter().cloned().collect();
    fields.push(Arc::new(kind_field()));
    let schema = Arc::new(Schema::new(fields));
    let detail = format!(
        "table={}, format=debezium-json, files={}, changelog",
        files.table,
        files.splits.iter().map(Vec::len).sum::<usize>()
    );
    let partitions = files.splits.len().max(1);
    let projection: Option<Arc<[usize]>> = projection.map(|p| p.as_slice().into());
    let out_schema = Arc::clone(&schema);
    let open = Arc::new(move |partition: usize, _ctx| {
        let split = files.splits.get(partition).cloned().unwrap_or_default();
        let batches = read_split(split, Arc::clone(&files.decoder), projection.clone()).map(|c| {
            c.and_then(|c| c.with_kind_column())
                .map_err(DataFusionError::from)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&out_schema),
            batches,
        )) as _)
    });
    Ok(Arc::new(StreamExec::new(
        "DebeziumChangelogExec",
        detail,
        schema,
        partitions,
        true,
        open,
    )))
}

/// Rows with signed counts: the sum of a changelog.
struct Multiset {
    schema: SchemaRef,
    /// `None` when there are no columns (only the count matters).
    converter: Option<RowConverter>,
    /// Row → (count, order of first addition).
    rows: HashMap<OwnedRow, (i64, u64)>,
    next: u64,
    /// The count of the empty row (no columns).
    empty_rows: i64,
}

impl Multiset {
    fn new(schema: SchemaRef) -> Result<Multiset> {
        let converter = if schema.fields().is_empty() {
            None
        } else {
            Some(RowConverter::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?)
        };
        Ok(Multiset {
            schema,
            converter,
            rows: HashMap::new(),
            next: 0,
            empty_rows: 0,
        })
    }

    fn apply(&mut self, changes: &Changes) -> Result<()> {
        let delta = |row: usize| {
            if changes.kind(row).is_addition() {
                1
            } else {
                -1
            }
        };
        let Some(converter) = &self.converter else {
            self.empty_rows += (0..changes.num_rows()).map(delta).sum::<i64>();
            return Ok(());
        };
        let rows = converter.convert_columns(changes.data.columns())?;
        for (i, row) in rows.iter().enumerate() {
            let owned = row.owned();
            let entry = self.rows.entry(owned).or_insert((0, self.next));
            self.next += 1;
            entry.0 += delta(i);
            if entry.0 == 0 {
                self.rows.remove(&row.owned());
            }
        }
        Ok(())
    }

    /// The rows left, in batches of at most `batch_size` rows.
    fn finish(self, table: &str, batch_size: usize) -> Result<Vec<RecordBatch>> {
        let negative =
            self.rows.values().filter(|(n, _)| *n < 0).count() + usize::from(self.empty_rows < 0);
        if negative > 0 {
            return Err(Error::external(format!(
                "the changelog in the files of table `{table}` removes {negative} row(s) more \
                 often than it adds them (e.g. a \"d\" event without its \"c\"), so it cannot be \
                 materialized"
            )));
        }
        let Some(converter) = &self.converter else {
            let mut left = usize::try_from(self.empty_rows).unwrap_or_default();
            let mut out = Vec::new();
            while left > 0 {
                let n = left.min(batch_size);
                out.push(RecordBatch::try_new_with_options(
                    Arc::clone(&self.schema),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(n)),
                )?);
                left -= n;
            }
            return Ok(out);
        };
        let mut entries: Vec<(&OwnedRow, &(i64, u64))> = self.rows.iter().collect();
        entries.sort_by_key(|(_, (_, first))| *first);
        let mut rows = Vec::new();
        for (row, (n, _)) in entries {
            for _ in 0..*n {
                rows.push(row.row());
            }
        }
        rows.chunks(batch_size)
            .map(|chunk| {
                let columns = converter.convert_rows(chunk.iter().copied())?;
                Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_files_group_in_number_order() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "part-bbb-10.json",
            "part-aaa-2.json",
            "part-bbb-9.json",
            "other.json",
            "part-aaa-1.json",
        ];
        let mut files = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let path = dir.path().join(name);
            std::fs::write(&path, "").unwrap();
            let f = File::options().write(true).open(&path).unwrap();
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i as u64);
            f.set_modified(t).unwrap();
            files.push(path);
        }
        let splits = splits(files);
        let names: Vec<Vec<String>> = splits
            .iter()
            .map(|s| {
                s.iter()
                    .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
                    .collect()
            })
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["part-bbb-9.json", "part-bbb-10.json"],
                vec!["part-aaa-1.json", "part-aaa-2.json"],
                vec!["other.json"],
            ]
        );
        assert_eq!(
            writer_of(Path::new("part-0af3-17.json")),
            Some(("0af3".to_string(), 17))
        );
        assert_eq!(writer_of(Path::new("part-x.json")), None);
    }
}
