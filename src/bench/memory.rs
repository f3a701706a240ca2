//! Peak memory of a benchmark query: the resident-set high-water mark of the `weir` process
//! (`VmHWM` in `/proc/self/status`), reset before each query by writing `5` to
//! `/proc/self/clear_refs`. It counts the whole process (the session, the cached Parquet
//! metadata, the runtime), so it is an upper bound on the query's own memory. Linux only; on
//! other systems, or when the reset is refused, peaks are not reported.

/// Resets the high-water mark to the current RSS; whether that worked.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The RSS high-water mark in bytes since the last [`reset_peak`] (or process start).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_hwm(&status)
}

fn parse_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// Bytes as a short human size: `812 MiB`, `1.6 GiB`.
pub fn human(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.0} MiB", b / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwm_parses_and_follows_allocations() {
        assert_eq!(parse_hwm("Name:\tx\nVmHWM:\t  2048 kB\n"), Some(2 << 20));
        assert_eq!(parse_hwm("Name:\tx\n"), None);
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human(5 << 20), "5 MiB");
        if cfg!(target_os = "linux") && reset_peak() {
            let before = peak_rss_bytes().unwrap_or(0);
            let big = vec![7u8; 64 << 20];
            let after = peak_rss_bytes().unwrap_or(0);
            assert!(big.iter().step_by(4096).all(|&b| b == 7));
            assert!(after >= before + (60 << 20), "{before} -> {after}");
        }
    }
}
