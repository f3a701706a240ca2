//! The Hive catalog's options: `uri`, `default-database`, `hive-conf-dir` (whose `hive-site.xml`
//! gives `hive.metastore.uris` and `hive.metastore.warehouse.dir`) and `timeout`, checked when
//! `CREATE CATALOG ... WITH ('type' = 'hive', ...)` runs (no connection is made then).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// The options a Hive catalog accepts.
pub const HIVE_OPTIONS: &[&str] = &[
    "type",
    "uri",
    "default-database",
    "hive-conf-dir",
    "hive-version",
    "timeout",
];

/// Default bound on one metastore call (connect + request + response).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Hive catalog's settings.
#[derive(Debug, Clone)]
pub struct HiveConfig {
    /// `host:port` of the metastore (from `thrift://host:port`).
    pub host: String,
    pub port: u16,
    pub default_database: String,
    /// `hive.metastore.warehouse.dir` from hive-site.xml, if given (used for new databases).
    pub warehouse: Option<String>,
    pub timeout: Duration,
}

impl HiveConfig {
    /// Reads and checks the options of catalog `name`.
    ///
    /// # Errors
    /// `Invalid` for unknown options (listing the valid ones), a missing or malformed URI, an
    /// unreadable `hive-site.xml` or a bad `timeout`.
    pub fn from_options(name: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        if let Some(bad) = options.keys().find(|k| !HIVE_OPTIONS.contains(&k.as_str())) {
            return Err(Error::invalid(format!(
                "unknown option '{bad}' for catalog `{name}` of type 'hive'; valid options: {}",
                HIVE_OPTIONS.join(", ")
            )));
        }
        let mut uri = options.get("uri").cloned();
        let mut warehouse = None;
        if let Some(dir) = options.get("hive-conf-dir") {
            let site = read_hive_site(&Path::new(dir).join("hive-site.xml"))?;
            if uri.is_none() {
                uri = site.get("hive.metastore.uris").cloned();
            }
            warehouse = site.get("hive.metastore.warehouse.dir").cloned();
        }
        let uri = uri.ok_or_else(|| {
            Error::invalid(format!(
                "catalog `{name}` of type 'hive' needs a 'uri' option ('thrift://host:9083') or a \
                 'hive-conf-dir' whose hive-site.xml sets hive.metastore.uris"
            ))
        })?;
        let (host, port) = parse_uri(&uri).map_err(|e| e.context(format!("catalog `{name}`")))?;
        let timeout = match options.get("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(t) => parse_timeout(t).ok_or_else(|| {
                Error::invalid(format!(
                    "catalog `{name}`: option 'timeout' = '{t}' is not a duration of at most a day (e.g. '10 s', '500 ms', '2 min')"
                ))
            })?,
        };
        if let Some(v) = options.get("hive-version")
            && !v.starts_with("2.")
            && !v.starts_with("3.")
        {
            return Err(Error::invalid(format!(
                "catalog `{name}`: 'hive-version' = '{v}' is not supported (2.x or 3.x)"
            )));
        }
        Ok(Self {
            host,
            port,
            default_database: options
                .get("default-database")
                .cloned()
                .unwrap_or_else(|| "default".to_string()),
            warehouse,
            timeout,
        })
    }

    /// The metastore's address (resolving the host name).
    ///
    /// # Errors
    /// `External` when the host name does not resolve.
    pub async fn address(&self) -> Result<SocketAddr> {
        let mut addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                Error::external(format!(
                    "cannot resolve Hive Metastore host '{}': {e}",
                    self.host
                ))
            })?;
        addrs.next().ok_or_else(|| {
            Error::external(format!(
                "Hive Metastore host '{}' has no address",
                self.host
            ))
        })
    }
}

/// `thrift://host:port` (the first of a comma-separated list) → host and port.
fn parse_uri(uri: &str) -> Result<(String, u16)> {
    let first = uri.split(',').next().unwrap_or("").trim();
    let rest = first.strip_prefix("thrift://").ok_or_else(|| {
        Error::invalid(format!(
            "Hive Metastore URI '{uri}' must start with thrift:// (e.g. 'thrift://localhost:9083')"
        ))
    })?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>().map_err(|_| {
                Error::invalid(format!("Hive Metastore URI '{uri}' has a bad port '{p}'"))
            })?,
        ),
        None => (rest, 9083),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(Error::invalid(format!(
            "Hive Metastore URI '{uri}' has no host"
        )));
    }
    Ok((host.to_string(), port))
}

/// The metastore call timeout: a Flink duration, positive and at most a day (a bound, not a way
/// to wait forever).
fn parse_timeout(text: &str) -> Option<Duration> {
    crate::units::parse_duration(text).filter(|d| !d.is_zero() && *d <= Duration::from_secs(86_400))
}

/// The `<property><name>..</name><value>..</value></property>` pairs of a Hadoop-style
/// configuration file.
fn read_hive_site(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    parse_hadoop_conf(&text).map_err(|e| e.context(format!("in {}", path.display())))
}

fn parse_hadoop_conf(text: &str) -> Result<BTreeMap<String, String>> {
    let text = strip_comments(text);
    let mut out = BTreeMap::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("<property>") {
        let after = &rest[start + "<property>".len()..];
        let end = after
            .find("</property>")
            .ok_or_else(|| Error::invalid("a <property> element is not closed"))?;
        let body = &after[..end];
        if let (Some(name), Some(value)) = (element(body, "name"), element(body, "value")) {
            out.insert(unescape(name.trim()), unescape(value.trim()));
        }
        rest = &after[end + "</property>".len()..];
    }
    Ok(out)
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

fn element<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    Some(&body[start..end])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
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
    fn uri_and_options_are_checked() {
        let c = HiveConfig::from_options(
            "h",
            &opts(&[
                ("type", "hive"),
                ("uri", "thrift://127.0.0.1:9999"),
                ("timeout", "500 ms"),
            ]),
        )
        .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 9999));
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.default_database, "default");
        let err =
            HiveConfig::from_options("h", &opts(&[("type", "hive"), ("url", "x")])).unwrap_err();
        assert!(err.message.contains("unknown option 'url'"), "{err}");
        assert!(
            err.message.contains("uri, default-database, hive-conf-dir"),
            "{err}"
        );
        let err = HiveConfig::from_options("h", &opts(&[("type", "hive")])).unwrap_err();
        assert!(err.message.contains("needs a 'uri'"), "{err}");
        let err = HiveConfig::from_options("h", &opts(&[("uri", "http://x:1")])).unwrap_err();
        assert!(err.message.contains("thrift://"), "{err}");
        let err = HiveConfig::from_options("h", &opts(&[("uri", "thrift://x:port")])).unwrap_err();
        assert!(err.message.contains("bad port"), "{err}");
        for bad in [
            "soon",
            "0 s",
            "99999999999999999999 min",
            "2 days",
            "25 h",
            "1441 min",
        ] {
            let err =
                HiveConfig::from_options("h", &opts(&[("uri", "thrift://x:1"), ("timeout", bad)]))
                    .unwrap_err();
            assert!(err.message.contains("'timeout'"), "{bad}: {err}");
        }
        assert_eq!(
            parse_uri("thrift://a:1,thrift://b:2").unwrap(),
            ("a".into(), 1)
        );
        assert_eq!(parse_uri("thrift://meta").unwrap(), ("meta".into(), 9083));
    }

    #[test]
    fn hive_site_gives_uri_and_warehouse() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("hive-site.xml"),
            r#"<?xml version="1.0"?>
<configuration>
  <!-- <property><name>hive.metastore.uris</name><value>thrift://commented:1</value></property> -->
  <property>
    <name>hive.metastore.uris</name>
    <value>thrift://127.0.0.1:19083</value>
  </property>
  <property><name>hive.metastore.warehouse.dir</name><value>file:/tmp/w&amp;h</value></property>
  <property><name>other</name><value>x</value></property>
</configuration>"#,
        )
        .unwrap();
        let c = HiveConfig::from_options(
            "h",
            &opts(&[("hive-conf-dir", dir.path().to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.port, 19083);
        assert_eq!(c.warehouse.as_deref(), Some("file:/tmp/w&h"));
        let err = HiveConfig::from_options("h", &opts(&[("hive-conf-dir", "/nonexistent/x")]))
            .unwrap_err();
        assert!(err.message.contains("hive-site.xml"), "{err}");
    }
}
