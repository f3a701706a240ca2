//! Connector option handling: the `WITH (...)` options of a table definition, checked against a
//! connector's list of valid keys and parsed into typed values (booleans, counts, memory sizes,
//! durations, characters). Every connector's `validate` and provider constructor goes through
//! [`ConnectorOptions`], so error messages have one shape: they name the table (when known), the
//! connector, the option, and what would be valid.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::units::{parse_duration, parse_memory_size};

/// Flink's watermark options of a source table (FLIP-296), valid with every source connector;
/// the planner reads them (`planner::watermark::WatermarkOptions`), not the connector.
pub(crate) const WATERMARK_OPTIONS: &[&str] = &[
    "scan.watermark.idle-timeout",
    "scan.watermark.alignment.group",
    "scan.watermark.alignment.max-drift",
    "scan.watermark.alignment.update-interval",
];

/// A source connector's valid keys: its own and [`WATERMARK_OPTIONS`].
pub(crate) fn source_options<'k>(own: &[&'k str]) -> Vec<&'k str> {
    own.iter().chain(WATERMARK_OPTIONS).copied().collect()
}

/// A table's options seen through one connector: lookups, typed parsing and error messages.
#[derive(Debug, Clone)]
pub(crate) struct ConnectorOptions<'a> {
    table: Option<&'a str>,
    connector: &'static str,
    map: &'a BTreeMap<String, String>,
}

impl<'a> ConnectorOptions<'a> {
    pub(crate) fn new(
        table: Option<&'a str>,
        connector: &'static str,
        map: &'a BTreeMap<String, String>,
    ) -> Self {
        Self {
            table,
            connector,
            map,
        }
    }

    /// "table `t` (connector 'filesystem')", or "connector 'filesystem'" when the table's name is
    /// not known (validation at CREATE TABLE).
    pub(crate) fn describe(&self) -> String {
        describe(self.table, self.connector)
    }

    /// Checks that every option is one of `known` or accepted by `dynamic` (for keys like
    /// `fields.<col>.kind`). `connector` is always valid.
    pub(crate) fn check_known(
        &self,
        known: &[&str],
        dynamic: impl Fn(&str) -> Result<bool>,
    ) -> Result<()> {
        let mut unknown = Vec::new();
        for key in self.map.keys() {
            if key == "connector" || known.contains(&key.as_str()) || dynamic(key)? {
                continue;
            }
            unknown.push(format!("'{key}'"));
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let mut valid: Vec<&str> = known.to_vec();
        valid.push("connector");
        valid.sort_unstable();
        let plural = if unknown.len() == 1 { "" } else { "s" };
        Err(Error::invalid(format!(
            "unsupported option{plural} {} for {}; supported options: {}",
            unknown.join(", "),
            self.describe(),
            valid.join(", ")
        )))
    }

    /// The raw value of an option.
    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        self.map.get(key).map(String::as_str)
    }

    /// The raw value of a required option.
    pub(crate) fn required(&self, key: &str) -> Result<&'a str> {
        self.get(key).ok_or_else(|| {
            Error::invalid(format!(
                "missing required option '{key}' for {}",
                self.describe()
            ))
        })
    }

    /// An error about the value of `key`, saying what is valid.
    pub(crate) fn bad_value(&self, key: &str, value: &str, valid: &str) -> Error {
        Error::invalid(format!(
            "invalid value '{value}' for option '{key}' of {}; {valid}",
            self.describe()
        ))
    }

    /// A boolean option (`true` / `false`, any case).
    pub(crate) fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => {
                parse_bool(v).ok_or_else(|| self.bad_value(key, v, "expected 'true' or 'false'"))
            }
        }
    }

    /// A non-negative integer option.
    pub(crate) fn u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| self.bad_value(key, v, "expected a non-negative integer")),
        }
    }

    /// A floating-point option.
    pub(crate) fn f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.bad_value(key, v, "expected a number")),
            },
        }
    }

    /// A memory size such as `128MB`, `64 kb`, `1gb` or a plain number of bytes.
    pub(crate) fn memory_size(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_memory_size(v).map(Some).ok_or_else(|| {
                self.bad_value(
                    key,
                    v,
                    "expected a memory size such as '128MB', '64kb' or '1024'",
                )
            }),
        }
    }

    /// A duration such as `10 s`, `5 min`, `1h`, `500ms` or a plain number of milliseconds.
    pub(crate) fn duration(&self, key: &str) -> Result<Option<Duration>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_duration(v).map(Some).ok_or_else(|| {
                self.bad_value(
                    key,
                    v,
                    "expected a duration such as '10 s', '5 min' or '1 h'",
                )
            }),
        }
    }

    /// A single ASCII character option (`\t` is accepted for a tab).
    pub(crate) fn char(&self, key: &str, default: u8) -> Result<u8> {
        match self.get(key) {
            None => Ok(default),
            Some("\\t") => Ok(b'\t'),
            Some(v) if v.len() == 1 && v.is_ascii() => Ok(v.as_bytes()[0]),
            Some(v) => Err(self.bad_value(key, v, "expected a single ASCII character")),
        }
    }

    /// An option whose value must be one of `valid` (compared case-insensitively); returns the
    /// matching entry of `valid`.
    pub(crate) fn one_of(&self, key: &str, valid: &[&'static str]) -> Result<Option<&'static str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => valid
                .iter()
                .find(|c| c.eq_ignore_ascii_case(v.trim()))
                .copied()
                .map(Some)
                .ok_or_else(|| {
                    self.bad_value(key, v, &format!("valid values: {}", valid.join(", ")))
                }),
        }
    }
}

/// "table `t` (connector 'c')" or "connector 'c'".
pub(crate) fn describe(table: Option<&str>, connector: &str) -> String {
    match table {
        Some(t) => format!("table `{t}` (connector '{connector}')"),
        None => format!("connector '{connector}'"),
    }
}

/// Parses `true` / `false` in any case.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_option_names_it_and_lists_valid_ones() {
        let map = opts(&[("connector", "x"), ("pathh", "/tmp"), ("format", "csv")]);
        let o = ConnectorOptions::new(Some("t"), "filesystem", &map);
        let err = o
            .check_known(&["path", "format"], |_| Ok(false))
            .unwrap_err();
        assert_eq!(
            err.message,
            "unsupported option 'pathh' for table `t` (connector 'filesystem'); supported options: connector, format, path"
        );
    }

    #[test]
    fn typed_values_report_the_option() {
        let map = opts(&[("n", "abc"), ("b", "TRUE"), ("c", "ab"), ("t", "\\t")]);
        let o = ConnectorOptions::new(None, "datagen", &map);
        let err = o.u64("n").unwrap_err();
        assert!(
            err.message
                .contains("'abc' for option 'n' of connector 'datagen'"),
            "{}",
            err.message
        );
        assert!(o.bool("b", false).unwrap());
        assert!(o.bool("missing", true).unwrap());
        assert!(o.char("c", b',').is_err());
        assert_eq!(o.char("t", b',').unwrap(), b'\t');
        assert_eq!(
            o.required("zz").unwrap_err().message,
            "missing required option 'zz' for connector 'datagen'"
        );
    }
}
