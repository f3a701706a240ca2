//! Memory sizes and durations as users write them, in one grammar for every place they appear:
//! `SET` options (`weir.memory-limit`, `table.exec.state.ttl`), connector and catalog options
//! (`sink.rolling-policy.file-size`, `timeout`), and command-line flags (`--memory-limit`).
//!
//! The grammar is Flink's (`MemorySize`, `TimeUtils.parseDuration`), a little more lenient:
//! - a memory size is a number, optional spaces, and an optional unit: `b`/`bytes`,
//!   `k`/`kb`/`kib`/`kibibytes`, `m`/`mb`/`mib`/`mebibytes`, `g`/`gb`/`gib`/`gibibytes`,
//!   `t`/`tb`/`tib`/`tebibytes`, in any case. Units are binary (1 kb = 1024 bytes), as in Flink.
//!   The number may have a fraction (`1.5g`); a bare number is bytes.
//! - a duration is a whole number, optional spaces, and an optional unit: `ns`, `us`/`µs`, `ms`,
//!   `s`, `min`/`m`, `h`, `d` and their long forms (`millis`, `seconds`, `minutes`, ...); a bare
//!   number is milliseconds.
//!
//! The parsers return `None` for anything else, including values that overflow; callers say
//! which option was wrong and add their own bounds (positive, at most a day, ...).

use std::time::Duration;

/// Parses a memory size into bytes (see the module documentation for the grammar). A fractional
/// result is rounded down to whole bytes.
pub fn parse_memory_size(text: &str) -> Option<u64> {
    let (number, unit) = split_number(text, true)?;
    let factor: u64 = match unit.as_str() {
        "" | "b" | "byte" | "bytes" => 1,
        "k" | "kb" | "kib" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mib" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gib" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tib" | "tebibytes" => 1 << 40,
        _ => return None,
    };
    match number.split_once('.') {
        None => number.parse::<u64>().ok()?.checked_mul(factor),
        Some(_) => {
            let value = number.parse::<f64>().ok()? * factor as f64;
            // 2^64 itself is not representable as u64; anything from there on overflows.
            (value.is_finite() && value < u64::MAX as f64).then_some(value as u64)
        }
    }
}

/// Parses a duration (see the module documentation for the grammar).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = split_number(text, false)?;
    let n: u64 = number.parse().ok()?;
    let nanos_per: u128 = match unit.as_str() {
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => 1,
        "us" | "µs" | "micro" | "micros" | "microsecond" | "microseconds" => 1_000,
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * 1_000_000_000,
        "h" | "hour" | "hours" => 3_600 * 1_000_000_000,
        "d" | "day" | "days" => 86_400 * 1_000_000_000,
        _ => return None,
    };
    let nanos = u128::from(n) * nanos_per;
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    // The remainder is below 10^9, so it fits.
    let sub = (nanos % 1_000_000_000) as u32;
    Some(Duration::new(secs, sub))
}

/// Splits `" 12.5 MB "` into `("12.5", "mb")`: leading digits (and one `.` when `fraction`),
/// then the rest trimmed and lower-cased. `None` when there are no digits.
fn split_number(text: &str, fraction: bool) -> Option<(&str, String)> {
    let t = text.trim();
    let mut seen_dot = false;
    let end = t
        .char_indices()
        .find(|&(_, c)| {
            if c == '.' && fraction && !seen_dot {
                seen_dot = true;
                return false;
            }
            !c.is_ascii_digit()
        })
        .map_or(t.len(), |(i, _)| i);
    let number = &t[..end];
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((number, t[end..].trim().to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory_size("128MB"), Some(128 << 20));
        assert_eq!(parse_memory_size(" 64 kb "), Some(64 << 10));
        assert_eq!(parse_memory_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_memory_size("1 gibibytes"), Some(1 << 30));
        assert_eq!(parse_memory_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_memory_size("1024"), Some(1024));
        assert_eq!(parse_memory_size("0"), Some(0));
        assert_eq!(parse_memory_size("3 T"), Some(3 << 40));
        for bad in [
            "",
            "MB",
            "-1GB",
            "2XB",
            "1.2.3MB",
            ".",
            "12 parsecs",
            "99999999999 tb",
            "99999999999999999999",
            "1e3",
        ] {
            assert_eq!(parse_memory_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10 s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("30 MIN"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("2 h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1 d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1500 us"), Some(Duration::from_micros(1500)));
        assert_eq!(parse_duration("7ns"), Some(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        // Large but representable: no overflow panic, no wrap-around.
        assert_eq!(
            parse_duration("18446744073709551615 d").map(|d| d.as_secs()),
            None
        );
        assert_eq!(
            parse_duration("18446744073709551 s"),
            Some(Duration::from_secs(18_446_744_073_709_551))
        );
        for bad in ["", "soon", "ten s", "3 weeks", "1.5 s", "-1 s", "s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
