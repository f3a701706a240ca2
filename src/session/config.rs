//! Session options: `SET 'key' = 'value'`, `RESET`, and how they reach DataFusion.
//!
//! Flink keys Weir understands: `execution.runtime-mode` (`batch` | `streaming` | `auto`),
//! `parallelism.default` (DataFusion's target partitions), `table.local-time-zone`,
//! `sql-client.execution.result-mode` (`table` | `tableau` | `changelog`, read by the shell).
//! Keys starting with `datafusion.` go to DataFusion's configuration (validated by it). Other
//! Flink keys (`table.*`, `pipeline.*`, `execution.*`, `sql-client.*`, `state.*`) are kept and
//! shown by `SET`, as Flink's client does, but have no effect yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionConfig;

use crate::batch::BatchQueryPlanner;
use crate::error::{Error, Result};
use crate::functions::proctime::ProcTime;

/// Options with their defaults, shown by `SET` even when not set.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("execution.runtime-mode", "auto"),
    ("sql-client.execution.result-mode", "table"),
];

const KNOWN_PREFIXES: &[&str] = &[
    "table.",
    "pipeline.",
    "execution.",
    "sql-client.",
    "state.",
    "parallelism.",
    "datafusion.",
    "weir.",
];

/// Checks one `SET` before it takes effect.
pub fn validate(key: &str, value: &str) -> Result<()> {
    let one_of = |valid: &[&str]| {
        if valid.contains(&value) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "invalid value '{value}' for '{key}'; valid values: {}",
                valid.join(", ")
            )))
        }
    };
    match key {
        "execution.runtime-mode" => one_of(&["batch", "streaming", "auto"]),
        "sql-client.execution.result-mode" => one_of(&["table", "tableau", "changelog"]),
        "parallelism.default" => match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(Error::invalid(format!(
                "'parallelism.default' must be a positive integer, got '{value}'"
            ))),
        },
        _ if KNOWN_PREFIXES.iter().any(|p| key.starts_with(p)) => Ok(()),
        _ => Err(Error::invalid(format!(
            "unknown option '{key}'; options start with one of: {}",
            KNOWN_PREFIXES.join(", ")
        ))),
    }
}

/// Builds the DataFusion session state for the current options.
pub fn build_state(options: &BTreeMap<String, String>) -> Result<SessionState> {
    let mut config = SessionConfig::new()
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(false);
    let opts = config.options_mut();
    // Flink identifiers are case-sensitive (function names are not: DataFusion folds those).
    opts.sql_parser.enable_ident_normalization = false;
    opts.sql_parser.map_string_types_to_utf8view = false;
    opts.execution.parquet.schema_force_view_types = false;
    opts.execution.time_zone = Some("UTC".to_string());
    for (key, value) in options {
        match key.as_str() {
            "parallelism.default" => {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| Error::invalid(format!("bad parallelism '{value}'")))?;
                opts.execution.target_partitions = n;
            }
            "table.local-time-zone" => opts.execution.time_zone = Some(value.clone()),
            k if k.starts_with("datafusion.") => opts.set(k, value)?,
            _ => {}
        }
    }
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_query_planner(Arc::new(BatchQueryPlanner))
        .build();
    let mut state = state;
    datafusion::execution::FunctionRegistry::register_udf(&mut state, Arc::new(ProcTime::udf()))?;
    // Flink built-ins DataFusion lacks; `date_format` replaces DataFusion's `to_char` alias.
    for udf in crate::functions::flink::udfs() {
        datafusion::execution::FunctionRegistry::register_udf(&mut state, Arc::new(udf))?;
    }
    Ok(state)
}
