//! Session options: `SET 'key' = 'value'`, `RESET`, and how they reach DataFusion.
//!
//! Flink keys Weir understands: `execution.runtime-mode` (`batch` | `streaming` | `auto`),
//! `parallelism.default` (DataFusion's target partitions), `table.local-time-zone`,
//! `sql-client.execution.result-mode` (`table` | `tableau` | `changelog`, read by the shell).
//! Weir's own key `weir.memory-limit` (e.g. `2GB`) bounds batch queries' memory with a
//! DataFusion fair spill pool: operators that can spill (sorts, aggregations, joins) spill to
//! temporary files, others fail with a resources-exhausted error.
//! Streaming keys: `weir.stream.split-size` (cut file scans into byte ranges of at most this
//! size instead of one split per file), `weir.stream.channel-capacity`, and, for tests only,
//! `weir.testing.perturbation-seed` (see `stream::source`).
//! Keys starting with `datafusion.` go to DataFusion's configuration (validated by it).
//! Checkpointing (`execution.checkpointing.*`, `execution.savepoint.*`, `state.checkpoints.*`)
//! and `restart-strategy.*` are read when a streaming job starts (see `stream::checkpoint`,
//! `stream::restart`). Other Flink keys (`table.*`, `pipeline.*`, `execution.*`,
//! `sql-client.*`, `state.*`) are kept and shown by `SET`, as Flink's client does, but have no
//! effect yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
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
    "restart-strategy.",
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
        "weir.memory-limit" | "weir.stream.split-size" | "state.backend.memory-budget" => {
            parse_memory_size(value).map(|_| ())
        }
        "state.backend.type" => crate::stream::spill::BackendKind::parse(value).map(|_| ()),
        "weir.testing.perturbation-seed" => value.parse::<u64>().map(|_| ()).map_err(|_| {
            Error::invalid(format!(
                "'{key}' must be a non-negative integer seed, got '{value}'"
            ))
        }),
        "table.exec.state.ttl" | "table.exec.source.idle-timeout" => {
            crate::stream::parse_duration(value)
                .map(|_| ())
                .map_err(|e| e.context(format!("in '{key}'")))
        }
        "pipeline.max-parallelism" => match value.parse::<usize>() {
            Ok(n) if (1..=32768).contains(&n) => Ok(()),
            _ => Err(Error::invalid(format!(
                "'{key}' must be an integer from 1 to 32768, got '{value}'"
            ))),
        },
        "parallelism.default" | "weir.stream.channel-capacity" => match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(Error::invalid(format!(
                "'{key}' must be a positive integer, got '{value}'"
            ))),
        },
        _ if KNOWN_PREFIXES.iter().any(|p| key.starts_with(p)) => Ok(()),
        _ => Err(Error::invalid(format!(
            "unknown option '{key}'; options start with one of: {}",
            KNOWN_PREFIXES.join(", ")
        ))),
    }
}

/// Parses a positive memory size such as `2GB`, `512 MB`, `1.5g`, `64KiB` or `1000000` (bytes);
/// the grammar is [`crate::units::parse_memory_size`] (units are powers of 1024).
///
/// # Errors
/// `Invalid` when the text is not a positive size that fits in memory.
pub fn parse_memory_size(text: &str) -> Result<usize> {
    crate::units::parse_memory_size(text)
        .filter(|&n| n > 0)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "invalid memory size '{text}'; expected a positive size such as 2GB, 512MB or 1000000"
            ))
        })
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
    // As in Flink, `0.908` is DECIMAL(3, 3) (exact); `0.908E0` is DOUBLE.
    opts.sql_parser.parse_float_as_decimal = true;
    opts.execution.parquet.schema_force_view_types = false;
    opts.execution.time_zone = Some("UTC".to_string());
    // DataFusion's logical nullability of a CASE can be finer than the physical one
    // (`CASE WHEN NOT (x = x) THEN y ELSE 5 END` is non-null logically, nullable physically),
    // and its check of the two before an aggregate then fails a valid query (found by the TLP
    // fuzzer). The data is the same; the check exists for such planner differences.
    opts.execution.skip_physical_aggregate_schema_check = true;
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
    let mut builder = SessionStateBuilder::new();
    if let Some(limit) = options.get("weir.memory-limit") {
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(parse_memory_size(limit)?),
            std::num::NonZeroUsize::MIN.saturating_add(4),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .build()?;
        builder = builder.with_runtime_env(Arc::new(runtime));
    }
    let state = builder
        .with_config(config)
        .with_default_features()
        .with_query_planner(Arc::new(BatchQueryPlanner))
        .with_physical_optimizer_rules(crate::batch::pushdown_barrier::physical_rules())
        .build();
    let mut state = state;
    datafusion::execution::FunctionRegistry::register_udf(&mut state, Arc::new(ProcTime::udf()))?;
    // Answered from the planned argument type (Flink's type names live in `types`).
    datafusion::execution::FunctionRegistry::register_udf(
        &mut state,
        Arc::new(crate::planner::planning_functions::TypeOf::udf()),
    )?;
    // Flink built-ins DataFusion lacks; `date_format` replaces DataFusion's `to_char` alias.
    let families = [
        crate::functions::strings::udfs(),
        crate::functions::encoding::udfs(),
        crate::functions::time::udfs(),
        crate::functions::math::udfs(),
        crate::functions::collections::udfs(),
        crate::functions::json::udfs(),
        crate::functions::json_build::udfs(),
        crate::functions::bitmap::udfs(),
        crate::functions::conditional::udfs(),
    ];
    for udf in crate::functions::flink::udfs()
        .into_iter()
        .chain(crate::functions::time::LocalNow::udfs())
        .chain([crate::functions::overlaps::Overlaps::udf()])
        .chain(families.into_iter().flatten())
    {
        datafusion::execution::FunctionRegistry::register_udf(&mut state, Arc::new(udf))?;
    }
    // `SUM` / `AVG` with Flink's result types, over DataFusion's.
    for udaf in crate::functions::aggregates::udafs()
        .into_iter()
        .chain(crate::functions::list_aggregates::udafs())
        .chain(crate::functions::json_aggregates::udafs())
        .chain(crate::functions::bitmap::udafs())
    {
        datafusion::execution::FunctionRegistry::register_udaf(&mut state, Arc::new(udaf))?;
    }
    Ok(state)
}

#[cfg(test)]
mod memory_limit_tests {
    use super::*;

    #[test]
    fn memory_sizes_parse() -> Result<()> {
        assert_eq!(parse_memory_size("2GB")?, 2 << 30);
        assert_eq!(parse_memory_size(" 512 mb ")?, 512 << 20);
        assert_eq!(parse_memory_size("1.5g")?, 3 << 29);
        assert_eq!(parse_memory_size("1000")?, 1000);
        for bad in ["", "GB", "-1GB", "0", "2XB", "1.2.3MB"] {
            assert!(parse_memory_size(bad).is_err(), "{bad}");
        }
        assert!(validate("weir.memory-limit", "lots").is_err());
        let mut options = BTreeMap::new();
        options.insert("weir.memory-limit".to_string(), "64MB".to_string());
        let state = build_state(&options)?;
        assert!(matches!(
            state.runtime_env().memory_pool.memory_limit(),
            datafusion::execution::memory_pool::MemoryLimit::Finite(n) if n == 64 << 20
        ));
        Ok(())
    }
}
