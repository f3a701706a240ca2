//! How a [`BenchReport`] is written: a terminal table, JSON, CSV (`--output x.json|x.csv`), a
//! Markdown summary for the docs (`--markdown x.md`) and an SVG bar chart of per-query ratios
//! (`--chart x.svg`). Every format keeps the runner's own time apart from query time.

use std::path::Path;

use crate::error::{Error, Result};

use super::memory::human;
use super::report::BenchReport;

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

/// The columns shared by the table and the Markdown summary.
fn columns(report: &BenchReport) -> (Vec<String>, Vec<Vec<String>>) {
    let peers = report.ran_peers();
    let mut header: Vec<String> = ["query", "status", "rows", "min ms", "median ms", "max ms"]
        .map(String::from)
        .to_vec();
    header.push("peak mem".to_string());
    for p in &peers {
        header.push(format!("{p} ms"));
        header.push(format!("{p}/weir"));
    }
    let rows = report
        .queries
        .iter()
        .map(|q| {
            let mut row = vec![
                q.query.clone(),
                q.status.clone(),
                q.rows.map_or_else(|| "-".to_string(), |r| r.to_string()),
                ms(q.stats.min_ms),
                ms(q.stats.median_ms),
                ms(q.stats.max_ms),
                q.peak_memory_bytes.map_or_else(|| "-".to_string(), human),
            ];
            for p in &peers {
                match q.peer(p) {
                    Some(t) if t.error.is_some() => {
                        row.push("failed".to_string());
                        row.push("-".to_string());
                    }
                    Some(t) => {
                        row.push(ms(t.stats.median_ms));
                        row.push(ratio(t.ratio));
                    }
                    None => {
                        row.push("-".to_string());
                        row.push("-".to_string());
                    }
                }
            }
            row
        })
        .collect();
    (header, rows)
}

fn heading(report: &BenchReport) -> String {
    format!(
        "{} SF {}, {} iteration(s), {} thread(s){}{}",
        report.title,
        report.scale,
        report.iterations,
        report.threads,
        report
            .memory_limit
            .as_ref()
            .map_or_else(String::new, |m| format!(", memory limit {m}")),
        if report.settings.is_empty() {
            String::new()
        } else {
            format!(", SET {}", report.settings.join(", "))
        }
    )
}

fn summary_lines(report: &BenchReport) -> Vec<String> {
    let failed = report.queries.iter().filter(|q| !q.ok()).count();
    let s = report.summary();
    let mut lines = vec![format!(
        "{} queries, {failed} not ok; geometric mean of medians over the {} queries every engine answered: weir {} ms",
        report.queries.len(),
        s.queries,
        ms(s.weir_ms)
    )];
    for (engine, g, r) in &s.peers {
        lines.push(format!(
            "{engine}: geometric mean {} ms, geometric mean of {engine}/weir ratios {}",
            ms(*g),
            ratio(*r)
        ));
    }
    let t = &report.time;
    lines.push(format!(
        "query time {:.1} s; runner time: data generation {:.1} s{}, table setup {:.2} s, answer checking {:.1} s, peers {:.1} s",
        t.query_secs,
        t.generation_secs,
        if report.data_generated {
            ""
        } else {
            " (data reused)"
        },
        t.setup_secs,
        t.verify_secs,
        t.peers_secs
    ));
    for p in &report.peers {
        if let Some(why) = &p.skipped {
            lines.push(format!("{} skipped: {why}", p.engine));
        }
    }
    if let Some(why) = &report.verify_skipped {
        lines.push(format!("answers not verified: {why}"));
    }
    lines
}

fn problems(report: &BenchReport) -> Vec<String> {
    let mut out = Vec::new();
    for q in &report.queries {
        if let Some(e) = &q.error {
            out.push(format!("{}: {e}", q.query));
        }
        if let Some(m) = &q.verify_message {
            out.push(format!("{}: {m}", q.query));
        }
        for t in &q.peers {
            if let Some(e) = &t.error {
                out.push(format!("{} in {}: {e}", q.query, t.engine));
            }
        }
    }
    out
}

impl BenchReport {
    /// The report as a terminal table, then geometric means, runner time and problems.
    pub fn to_table(&self) -> String {
        let (header, rows) = columns(self);
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i < 2 {
                    s.push_str(&format!(" {cell:<w$} |"));
                } else {
                    s.push_str(&format!(" {cell:>w$} |"));
                }
            }
            s.push('\n');
            s
        };
        let mut sep = String::from("+");
        for w in &widths {
            sep.push_str(&"-".repeat(w + 2));
            sep.push('+');
        }
        sep.push('\n');
        let mut out = format!("{} ({})\n", heading(self), self.data_dir);
        out.push_str(&sep);
        out.push_str(&line(&header));
        out.push_str(&sep);
        for row in &rows {
            out.push_str(&line(row));
        }
        out.push_str(&sep);
        for l in summary_lines(self).into_iter().chain(problems(self)) {
            out.push_str(&l);
            out.push('\n');
        }
        out
    }

    /// The report as pretty JSON (with the summary of geometric means).
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "summary".to_string(),
                serde_json::to_value(self.summary()).unwrap_or_default(),
            );
        }
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }

    /// The report as CSV: one `query` row per query, then `runner` rows with the runner's own
    /// time (`total_ms`) per phase.
    pub fn to_csv(&self) -> String {
        let peers = self.ran_peers();
        let mut header: Vec<String> = [
            "kind",
            "name",
            "status",
            "rows",
            "min_ms",
            "median_ms",
            "max_ms",
            "peak_memory_bytes",
            "total_ms",
        ]
        .map(String::from)
        .to_vec();
        for p in &peers {
            header.push(format!("{p}_median_ms"));
            header.push(format!("{p}_ratio"));
            header.push(format!("{p}_error"));
        }
        header.push("error".to_string());
        let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
        let mut rows: Vec<Vec<Option<String>>> = Vec::new();
        for q in &self.queries {
            let mut row = vec![
                Some("query".to_string()),
                Some(q.query.clone()),
                Some(q.status.clone()),
                q.rows.map(|r| r.to_string()),
                Some(opt(q.stats.min_ms)),
                Some(opt(q.stats.median_ms)),
                Some(opt(q.stats.max_ms)),
                q.peak_memory_bytes.map(|b| b.to_string()),
                Some(opt(Some(q.stats.times_ms.iter().sum()))),
            ];
            for p in &peers {
                let t = q.peer(p);
                row.push(Some(opt(t.and_then(|t| t.stats.median_ms))));
                row.push(Some(opt(t.and_then(|t| t.ratio))));
                row.push(t.and_then(|t| t.error.clone()));
            }
            row.push(q.error.clone().or_else(|| q.verify_message.clone()));
            rows.push(row);
        }
        let t = &self.time;
        for (name, secs) in [
            ("data generation", t.generation_secs),
            ("table setup", t.setup_secs),
            ("queries", t.query_secs),
            ("answer checking", t.verify_secs),
            ("peers", t.peers_secs),
        ] {
            let mut row = vec![None; header.len()];
            row[0] = Some("runner".to_string());
            row[1] = Some(name.to_string());
            row[8] = Some(format!("{:.3}", secs * 1000.0));
            rows.push(row);
        }
        let rows: Vec<Vec<Option<String>>> = rows
            .into_iter()
            .map(|r| r.into_iter().map(|c| c.filter(|s| !s.is_empty())).collect())
            .collect();
        super::answers::to_csv(&header, &rows)
    }

    /// A short Markdown summary to paste into the docs.
    pub fn to_markdown(&self) -> String {
        let (header, rows) = columns(self);
        let mut out = format!("### {}\n\n", heading(self));
        out.push_str(&format!("Machine: {}.\n\n", self.machine));
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        let aligns: Vec<&str> = (0..header.len())
            .map(|i| if i < 2 { "---" } else { "---:" })
            .collect();
        out.push_str(&format!("| {} |\n", aligns.join(" | ")));
        for row in &rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out.push('\n');
        for l in summary_lines(self) {
            out.push_str(&format!("- {l}\n"));
        }
        let problems = problems(self);
        if !problems.is_empty() {
            out.push_str("\nProblems:\n\n");
            for p in problems {
                let one_line = p.replace('\n', " ");
                out.push_str(&format!("- {one_line}\n"));
            }
        }
        out.push_str(&format!("\nPeak memory: {}.\n", self.peak_memory_method));
        out
    }

    /// An SVG bar chart of each peer's per-query ratio to Weir (log scale; 1 = as fast).
    pub fn to_svg(&self) -> String {
        let peers = self.ran_peers();
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c"];
        let (bar, gap, left, top, height) = (10.0, 8.0, 50.0, 30.0, 240.0);
        let group = bar * peers.len().max(1) as f64 + gap;
        let width = left + group * self.queries.len() as f64 + 20.0;
        // log10 ratio in [-2, 2] maps to [height, 0] around the 1.0 line.
        let y = |r: f64| top + height / 2.0 - r.log10().clamp(-2.0, 2.0) / 2.0 * (height / 2.0);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{:.0}\" font-family=\"sans-serif\" font-size=\"10\">\n",
            top + height + 60.0
        );
        svg.push_str(&format!(
            "<text x=\"{left}\" y=\"15\">{}: peer median / Weir median per query (log scale, above the line: Weir faster)</text>\n",
            xml(&heading(self))
        ));
        for (label, r) in [("100x", 100.0), ("10x", 10.0), ("1", 1.0), ("0.1", 0.1)] {
            svg.push_str(&format!(
                "<line x1=\"{left}\" x2=\"{width:.0}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"{1}\"/><text x=\"5\" y=\"{0:.1}\">{label}</text>\n",
                y(r),
                if r == 1.0 { "#000" } else { "#ddd" }
            ));
        }
        for (i, q) in self.queries.iter().enumerate() {
            let x0 = left + group * i as f64;
            for (j, p) in peers.iter().enumerate() {
                if let Some(r) = q.peer(p).and_then(|t| t.ratio) {
                    let (ya, yb) = (y(r), y(1.0));
                    svg.push_str(&format!(
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar}\" height=\"{:.1}\" fill=\"{}\"><title>{} {p} {r:.2}</title></rect>\n",
                        x0 + bar * j as f64,
                        ya.min(yb),
                        (ya - yb).abs().max(0.5),
                        colors.get(j).unwrap_or(&"#888"),
                        xml(&q.query)
                    ));
                }
            }
            svg.push_str(&format!(
                "<text x=\"{x0:.1}\" y=\"{:.1}\">{}</text>\n",
                top + height + 15.0,
                xml(&q.query)
            ));
        }
        for (j, p) in peers.iter().enumerate() {
            svg.push_str(&format!(
                "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\">{p}/weir</text>\n",
                left + 120.0 * j as f64,
                top + height + 30.0,
                colors.get(j).unwrap_or(&"#888"),
                left + 120.0 * j as f64 + 14.0,
                top + height + 39.0
            ));
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// Writes the report to `path` in the format its extension names (`.json`, `.csv`, `.md`,
    /// `.svg`).
    ///
    /// # Errors
    /// `Invalid` for another extension; I/O errors with the path.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let text = match ext.as_deref() {
            Some("json") => self.to_json(),
            Some("csv") => self.to_csv(),
            Some("md") => self.to_markdown(),
            Some("svg") => self.to_svg(),
            _ => {
                return Err(Error::invalid(format!(
                    "cannot tell the report format of '{}'; use a .json, .csv, .md or .svg file name",
                    path.display()
                )));
            }
        };
        std::fs::write(path, text)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A report for tests: q01 ok and verified with a DuckDB ratio of 2, q02 failed.
#[cfg(test)]
pub(crate) fn sample_report() -> BenchReport {
    use super::report::{PeerReport, PeerTiming, QueryReport, RunnerTime, Stats};
    use std::time::Duration;
    let mut ok = QueryReport::new("q01".into());
    ok.record(Duration::from_millis(12), 4);
    ok.verified = Some(true);
    ok.peak_memory_bytes = Some(100 << 20);
    ok.peers.push(PeerTiming {
        engine: "duckdb".into(),
        stats: Stats::of(vec![24.0]),
        rows: Some(4),
        error: None,
        ratio: Some(2.0),
    });
    ok.refresh_status();
    let mut bad = QueryReport::new("q02".into());
    bad.error = Some("boom".into());
    bad.refresh_status();
    BenchReport {
        benchmark: "tpch".into(),
        title: "TPC-H".into(),
        scale: 0.01,
        data_dir: "/d".into(),
        data_generated: false,
        iterations: 1,
        threads: 2,
        memory_limit: Some("2GB".into()),
        settings: vec!["datafusion.execution.parquet.pushdown_filters=true".into()],
        peak_memory_method: "RSS high-water mark".into(),
        machine: "2 CPUs".into(),
        time: RunnerTime {
            generation_secs: 0.0,
            setup_secs: 0.01,
            query_secs: 0.012,
            verify_secs: 1.5,
            peers_secs: 2.0,
        },
        verify_skipped: None,
        peers: vec![
            PeerReport {
                engine: "duckdb".into(),
                version: Some("2.0.0".into()),
                skipped: None,
            },
            PeerReport {
                engine: "datafusion".into(),
                version: None,
                skipped: Some("not installed".into()),
            },
        ],
        queries: vec![ok, bad],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::answers::parse_csv;

    #[test]
    fn table_shows_queries_peers_means_and_runner_time() {
        let report = sample_report();
        assert!(!report.all_ok());
        let table = report.to_table();
        assert!(table.contains("| q01   | verified |"), "{table}");
        assert!(table.contains("duckdb/weir"), "{table}");
        assert!(table.contains("|        2.00 |"), "{table}");
        assert!(!table.contains("datafusion ms"), "{table}");
        assert!(
            table.contains("datafusion skipped: not installed"),
            "{table}"
        );
        assert!(table.contains("q02: boom"), "{table}");
        assert!(table.contains("2 queries, 1 not ok"), "{table}");
        assert!(table.contains("weir 12.0 ms"), "{table}");
        assert!(
            table.contains("geometric mean of duckdb/weir ratios 2.00"),
            "{table}"
        );
        assert!(table.contains("answer checking 1.5 s"), "{table}");
        assert!(table.contains("100 MiB"), "{table}");
    }

    #[test]
    fn json_csv_and_markdown_carry_the_same_facts() -> Result<()> {
        let report = sample_report();
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap_or_default();
        assert_eq!(json["queries"][0]["rows"], 4);
        assert_eq!(json["queries"][0]["median_ms"], 12.0);
        assert_eq!(json["queries"][0]["peers"][0]["ratio"], 2.0);
        assert_eq!(json["queries"][1]["status"], "failed");
        assert_eq!(json["time"]["verify_secs"], 1.5);
        assert_eq!(json["summary"]["queries"], 1);

        let csv = parse_csv(&report.to_csv())?;
        assert_eq!(csv.len(), 2 + 5);
        let q01 = &csv[0];
        assert_eq!(q01[0].as_deref(), Some("query"));
        assert_eq!(q01[2].as_deref(), Some("verified"));
        assert_eq!(q01[5].as_deref(), Some("12.000"));
        assert_eq!(q01[7].as_deref(), Some((100u64 << 20).to_string().as_str()));
        assert_eq!(q01[10].as_deref(), Some("2.000"));
        assert_eq!(csv[1][12].as_deref(), Some("boom"));
        let verify = csv
            .iter()
            .find(|r| r[1].as_deref() == Some("answer checking"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(verify[0].as_deref(), Some("runner"));
        assert_eq!(verify[8].as_deref(), Some("1500.000"));

        let md = report.to_markdown();
        assert!(md.starts_with(
            "### TPC-H SF 0.01, 1 iteration(s), 2 thread(s), memory limit 2GB, SET datafusion.execution.parquet.pushdown_filters=true"
        ));
        assert!(
            md.contains("| q01 | verified | 4 | 12.0 | 12.0 | 12.0 | 100 MiB | 24.0 | 2.00 |"),
            "{md}"
        );
        assert!(md.contains("- q02: boom"), "{md}");

        let svg = report.to_svg();
        assert!(
            svg.starts_with("<svg") && svg.contains("q01 duckdb 2.00"),
            "{svg}"
        );
        Ok(())
    }

    #[test]
    fn write_to_picks_the_format_by_extension() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let report = sample_report();
        for ext in ["json", "csv", "md", "svg"] {
            let path = dir.path().join(format!("r.{ext}"));
            report.write_to(&path)?;
            assert!(std::fs::metadata(&path).is_ok_and(|m| m.len() > 0), "{ext}");
        }
        let err = report.write_to(&dir.path().join("r.txt")).err();
        assert!(err.is_some_and(|e| e.message.contains(".json, .csv")));
        Ok(())
    }
}
