//! Random tables for the query fuzzer: a schema of typed columns, rows with NULLs, duplicates
//! and extreme values, written as newline-delimited JSON files of a `filesystem` table (one to
//! three files, some empty). A table with an event-time column keeps it ascending within each
//! file, so streaming drops no row as late and its answer is the batch answer.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::rngs::StdRng;

/// A column type of the generated tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Int,
    BigInt,
    Double,
    Decimal,
    Str,
    Bool,
    Date,
    Ts,
}

impl Ty {
    pub const ALL: [Ty; 8] = [
        Ty::Int,
        Ty::BigInt,
        Ty::Double,
        Ty::Decimal,
        Ty::Str,
        Ty::Bool,
        Ty::Date,
        Ty::Ts,
    ];

    pub fn sql(self) -> &'static str {
        match self {
            Ty::Int => "INT",
            Ty::BigInt => "BIGINT",
            Ty::Double => "DOUBLE",
            Ty::Decimal => "DECIMAL(10, 2)",
            Ty::Str => "STRING",
            Ty::Bool => "BOOLEAN",
            Ty::Date => "DATE",
            Ty::Ts => "TIMESTAMP(3)",
        }
    }

    pub fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::BigInt | Ty::Double | Ty::Decimal)
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Double(f64),
    /// Hundredths.
    Decimal(i64),
    Str(String),
    Bool(bool),
    /// Days after 2024-01-01.
    Date(i64),
    /// Milliseconds after 2024-01-01 00:00:00.
    Ts(i64),
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: Ty,
}

/// A generated table: its columns, its rows split over files, and whether it declares a
/// watermark on `ts` (its last column).
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// The rows of each file.
    pub files: Vec<Vec<Vec<Value>>>,
    pub event_time: bool,
}

fn date(days: i64) -> String {
    // 2024 is a leap year; the generated days stay within January and February.
    let (month, day) = if days < 31 {
        (1, days + 1)
    } else {
        (2, days - 30)
    };
    format!("2024-{month:02}-{day:02}")
}

fn timestamp(ms: i64) -> String {
    let s = ms / 1000;
    format!(
        "2024-01-01 {:02}:{:02}:{:02}.{:03}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

impl Value {
    /// The value as a JSON value of the table's files.
    fn json(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Int(v) => v.to_string(),
            Value::Double(v) => format!("{v:?}"),
            Value::Decimal(v) => format!(
                "{}{}.{:02}",
                if *v < 0 { "-" } else { "" },
                v.abs() / 100,
                v.abs() % 100
            ),
            Value::Str(s) => format!("{s:?}"),
            Value::Bool(b) => b.to_string(),
            Value::Date(d) => format!("\"{}\"", date(*d)),
            Value::Ts(ms) => format!("\"{}\"", timestamp(*ms)),
        }
    }

    /// The value as a SQL literal of its type.
    pub fn literal(&self, ty: Ty) -> String {
        match self {
            Value::Null => format!("CAST(NULL AS {})", ty.sql()),
            Value::Int(v) if ty == Ty::BigInt => format!("CAST({v} AS BIGINT)"),
            Value::Int(v) => v.to_string(),
            Value::Double(v) => format!("CAST({v:?} AS DOUBLE)"),
            Value::Decimal(_) => format!("CAST({} AS DECIMAL(10, 2))", self.json()),
            Value::Str(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Bool(b) => b.to_string().to_uppercase(),
            Value::Date(d) => format!("DATE '{}'", date(*d)),
            Value::Ts(ms) => format!("TIMESTAMP '{}'", timestamp(*ms)),
        }
    }
}

/// A random non-NULL value of `ty` from a small domain (so joins match and groups repeat), now
/// and then an extreme one.
pub fn value(rng: &mut StdRng, ty: Ty) -> Value {
    let extreme = rng.random_bool(0.05);
    match ty {
        Ty::Int if extreme => Value::Int(*pick(rng, &[i32::MAX as i64, i32::MIN as i64])),
        Ty::BigInt if extreme => Value::Int(*pick(rng, &[i64::MAX, i64::MIN, 1 << 40])),
        Ty::Int | Ty::BigInt => Value::Int(rng.random_range(-3..=5)),
        Ty::Double if extreme => Value::Double(*pick(rng, &[1e300, -1e-300, 0.1, 123456.789])),
        Ty::Double => Value::Double(rng.random_range(-6..=6) as f64 * 0.5),
        Ty::Decimal if extreme => Value::Decimal(*pick(rng, &[99_999_999, -99_999_999, 1])),
        Ty::Decimal => Value::Decimal(rng.random_range(-8..=8) * 25),
        Ty::Str => Value::Str(
            pick(rng, &["a", "b", "ab", "", "B", "a b", "é", "%", "_x", "zz"]).to_string(),
        ),
        Ty::Bool => Value::Bool(rng.random_bool(0.5)),
        Ty::Date => Value::Date(rng.random_range(0..40)),
        Ty::Ts => Value::Ts(rng.random_range(0..60_000)),
    }
}

pub fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

impl Table {
    /// A random table: `c0 INT` and one to four more columns; with `event_time`, a last column
    /// `ts TIMESTAMP(3)` with a watermark.
    pub fn random(rng: &mut StdRng, name: &str, event_time: bool) -> Table {
        // Every table has `c0`, `c1`, ..: joins compare and filter same-named columns of both
        // sides (bug 15 of docs/fuzzing.md).
        let mut columns = vec![Column {
            name: "c0".into(),
            ty: Ty::Int,
        }];
        for i in 1..=rng.random_range(1..=4) {
            columns.push(Column {
                name: format!("c{i}"),
                ty: *pick(rng, &Ty::ALL),
            });
        }
        if event_time {
            columns.push(Column {
                name: "ts".into(),
                ty: Ty::Ts,
            });
        }
        let null_rate = *pick(rng, &[0.0, 0.1, 0.3]);
        let rows = *pick(rng, &[0usize, 1, 3, 8, 20, 40]);
        let mut all: Vec<Vec<Value>> = Vec::new();
        for _ in 0..rows {
            // Duplicate an earlier row now and then.
            if !all.is_empty() && rng.random_bool(0.15) {
                let i = rng.random_range(0..all.len());
                all.push(all[i].clone());
                continue;
            }
            let row = columns
                .iter()
                .map(|c| {
                    if c.name != "ts" && rng.random_bool(null_rate) {
                        Value::Null
                    } else {
                        value(rng, c.ty)
                    }
                })
                .collect();
            all.push(row);
        }
        let n_files = rng.random_range(1..=3);
        let mut files = vec![Vec::new(); n_files];
        for row in all {
            files[rng.random_range(0..n_files)].push(row);
        }
        let mut t = Table {
            name: name.into(),
            columns,
            files,
            event_time,
        };
        t.sort_event_time();
        t
    }

    /// Keeps `ts` ascending within each file (no late rows in streaming).
    pub fn sort_event_time(&mut self) {
        if !self.event_time {
            return;
        }
        let at = self.columns.len() - 1;
        for f in &mut self.files {
            f.sort_by_key(|r| match r[at] {
                Value::Ts(ms) => ms,
                _ => i64::MIN,
            });
        }
    }

    /// Writes the table's files under `root/<name>` (replacing what was there).
    pub fn write(&self, root: &Path) -> PathBuf {
        let dir = root.join(&self.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, rows) in self.files.iter().enumerate() {
            let mut text = String::new();
            for row in rows {
                text.push('{');
                for (j, (c, v)) in self.columns.iter().zip(row).enumerate() {
                    if j > 0 {
                        text.push_str(", ");
                    }
                    let _ = write!(text, "\"{}\": {}", c.name, v.json());
                }
                text.push_str("}\n");
            }
            std::fs::write(dir.join(format!("part-{i}.json")), text).unwrap();
        }
        dir
    }

    /// `CREATE TABLE` over the files in `dir`.
    pub fn ddl(&self, dir: &Path) -> String {
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty.sql()))
            .collect();
        if self.event_time {
            cols.push("WATERMARK FOR ts AS ts - INTERVAL '1' SECOND".into());
        }
        format!(
            "CREATE TABLE {} ({}) WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = 'json')",
            self.name,
            cols.join(", "),
            dir.display()
        )
    }

    /// The table as a reproducer: its DDL and its files' rows as JSON lines.
    pub fn describe(&self, dir: &Path) -> String {
        let mut out = format!("{};\n", self.ddl(dir));
        for (i, rows) in self.files.iter().enumerate() {
            let _ = writeln!(out, "-- part-{i}.json ({} rows):", rows.len());
            for row in rows {
                let cells: Vec<String> = row.iter().map(Value::json).collect();
                let _ = writeln!(out, "--   {}", cells.join(", "));
            }
        }
        out
    }
}
