//! The progress line the shell shows on stderr while a long query runs, fed by the query's scan
//! metrics ([`crate::session::Progress`]): `rows read: 1,234,567  bytes read: 12.3 MB  elapsed:
//! 2.1 s`. It only appears on a terminal, after [`SHOW_AFTER`], and is erased before the result
//! is printed.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::session::Progress;
use crate::shell::print::group_thousands;

/// How long a query runs before the progress line appears.
pub const SHOW_AFTER: Duration = Duration::from_millis(500);

/// How often the progress line is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_millis(200);

/// `12.3 MB`, in decimal units.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The text of the progress line.
pub fn format_progress(rows: u64, bytes: u64, elapsed: Duration) -> String {
    format!(
        "rows read: {}  bytes read: {}  elapsed: {:.1} s",
        group_thousands(rows),
        format_bytes(bytes),
        elapsed.as_secs_f64()
    )
}

/// Draws and erases the progress line of one running statement on stderr.
pub struct ProgressLine {
    progress: Option<Progress>,
    started: Instant,
    enabled: bool,
    shown: bool,
}

impl ProgressLine {
    /// A progress line for a statement started at `started`; `enabled` is false when stderr is
    /// not a terminal (nothing is ever drawn then).
    pub fn new(progress: Option<Progress>, started: Instant, enabled: bool) -> Self {
        Self {
            progress,
            started,
            enabled,
            shown: false,
        }
    }

    /// Redraws the line if the statement has run long enough.
    pub fn tick(&mut self) {
        if !self.enabled {
            return;
        }
        let Some(progress) = &self.progress else {
            return;
        };
        let elapsed = self.started.elapsed();
        if elapsed < SHOW_AFTER {
            return;
        }
        let (rows, bytes) = progress.read_so_far();
        let mut err = std::io::stderr().lock();
        // `\r` + "erase line": the line is redrawn in place.
        let _ = write!(err, "\r\x1b[2K{}", format_progress(rows, bytes, elapsed));
        let _ = err.flush();
        self.shown = true;
    }

    /// Erases the line if it was drawn.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(999), "999 B");
        assert_eq!(format_bytes(1000), "1.0 KB");
        assert_eq!(format_bytes(12_345_678), "12.3 MB");
        assert_eq!(format_bytes(5_000_000_000), "5.0 GB");
    }

    #[test]
    fn progress_text() {
        assert_eq!(
            format_progress(1_234_567, 12_300_000, Duration::from_millis(2100)),
            "rows read: 1,234,567  bytes read: 12.3 MB  elapsed: 2.1 s"
        );
    }

    #[test]
    fn disabled_line_draws_nothing() {
        let mut line = ProgressLine::new(None, Instant::now() - Duration::from_secs(5), false);
        line.tick();
        assert!(!line.shown);
        let mut line = ProgressLine::new(None, Instant::now() - Duration::from_secs(5), true);
        line.tick();
        assert!(!line.shown, "no progress source, nothing to show");
    }
}
