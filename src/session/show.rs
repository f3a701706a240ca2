//! `SHOW ...`, `DESCRIBE` and `SET` (listing): metadata as result rows, with Flink's column
//! names (`table name`, `database name`, ...).

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::ObjectName;

use super::ddl::parts;
use super::{Session, StatementResult, string_rows};
use crate::catalog::{CatalogTable, ColumnKind, TableDef};
use crate::error::{Error, Result};
use crate::planner::{PlanningContext, tables};
use crate::sql::{LikePattern, Show, Statement};
use crate::types::SqlType;

pub(super) async fn show(
    session: &Session,
    statement: &Statement,
    show: &Show,
) -> Result<StatementResult> {
    let registry = session.registry();
    match show {
        Show::Catalogs => one_column("catalog name", registry.catalog_names()),
        Show::CurrentCatalog => one_column(
            "current catalog name",
            vec![registry.current_catalog().to_string()],
        ),
        Show::CurrentDatabase => one_column(
            "current database name",
            vec![registry.current_database().to_string()],
        ),
        Show::Databases { catalog } => {
            let name = catalog
                .clone()
                .unwrap_or_else(|| registry.current_catalog().to_string());
            one_column(
                "database name",
                registry.catalog(&name)?.list_databases().await?,
            )
        }
        Show::Tables { from, like } => {
            let names = objects(session, from.as_ref(), None).await?;
            one_column("table name", filter(names, like.as_ref()))
        }
        Show::Views { from } => one_column(
            "view name",
            objects(session, from.as_ref(), Some(true)).await?,
        ),
        Show::Functions { user_only } => {
            if *user_only {
                return one_column("function name", session.user_functions().names());
            }
            let state = session.state();
            let mut names: Vec<String> = state
                .scalar_functions()
                .keys()
                .chain(state.aggregate_functions().keys())
                .chain(state.window_functions().keys())
                .cloned()
                .collect();
            names.sort();
            names.dedup();
            one_column("function name", names)
        }
        Show::Columns { table, like } => {
            let rows = describe_rows(session, statement, table).await?;
            let rows = rows
                .into_iter()
                .filter(|r| like.as_ref().is_none_or(|l| like_matches(l, &r[0])))
                .collect();
            string_rows(
                &["name", "type", "null", "key", "extras", "watermark"],
                rows,
            )
        }
        Show::CreateTable(name) | Show::CreateView(name) => {
            let path = registry.qualify(&parts(name))?;
            let table = registry
                .lookup(&path)
                .await?
                .ok_or_else(|| Error::not_found(format!("table or view {path} does not exist")))?;
            let text = match (&table, show) {
                (CatalogTable::Table(def), Show::CreateTable(_)) => {
                    create_table_text(&path.to_string(), def)
                }
                (CatalogTable::View(v), Show::CreateView(_)) => {
                    let cols = if v.columns.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({})",
                            v.columns
                                .iter()
                                .map(|c| format!("`{c}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    format!("CREATE VIEW {path}{cols} AS\n{}", v.query)
                }
                (CatalogTable::View(_), _) => {
                    return Err(Error::invalid(format!(
                        "{path} is a view; use SHOW CREATE VIEW"
                    )));
                }
                (CatalogTable::Table(_), _) => {
                    return Err(Error::invalid(format!(
                        "{path} is a table; use SHOW CREATE TABLE"
                    )));
                }
            };
            one_column("result", vec![text])
        }
        Show::Jobs => show_jobs(session),
    }
}

/// `SHOW JOBS`: the session's streaming jobs, oldest first, with Flink's columns and the jobs'
/// row counters.
fn show_jobs(session: &Session) -> Result<StatementResult> {
    let rows = session
        .jobs()
        .entries()
        .iter()
        .map(|e| {
            let (rows_in, rows_out, late) = e.row_counts();
            let checkpoint = e.job.checkpoint_stats();
            let last = checkpoint.as_ref().and_then(|c| c.last.clone());
            vec![
                e.id.clone(),
                e.name.clone(),
                e.job.status().name().to_string(),
                e.started.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
                rows_in.to_string(),
                rows_out.to_string(),
                late.to_string(),
                last.as_ref().map(|l| l.id.to_string()).unwrap_or_default(),
                last.as_ref()
                    .map(|l| {
                        let age = chrono::Utc::now() - l.completed_at;
                        format!("{:.1} s", age.num_milliseconds().max(0) as f64 / 1000.0)
                    })
                    .unwrap_or_default(),
                last.as_ref()
                    .map(|l| format!("{} ms", l.duration.as_millis()))
                    .unwrap_or_default(),
                last.as_ref()
                    .map(|l| l.size.to_string())
                    .unwrap_or_default(),
                last.as_ref()
                    .map(|l| l.state_size.to_string())
                    .unwrap_or_default(),
                checkpoint
                    .as_ref()
                    .map(|c| c.location.clone())
                    .unwrap_or_default(),
                e.job.restarts().to_string(),
            ]
        })
        .collect();
    string_rows(
        &[
            "job id",
            "job name",
            "status",
            "start time",
            "rows in",
            "rows out",
            "late rows dropped",
            "last checkpoint",
            "checkpoint age",
            "checkpoint duration",
            "checkpoint bytes",
            "state bytes",
            "checkpoint location",
            "restarts",
        ],
        rows,
    )
}

fn one_column(name: &str, values: Vec<String>) -> Result<StatementResult> {
    string_rows(&[name], values.into_iter().map(|v| vec![v]).collect())
}

/// Table and view names of a database (`views`: None = both, Some(true) = views only).
async fn objects(
    session: &Session,
    from: Option<&ObjectName>,
    views: Option<bool>,
) -> Result<Vec<String>> {
    let registry = session.registry();
    let (catalog, database) = match from.map(parts).as_deref() {
        None => (
            registry.current_catalog().to_string(),
            registry.current_database().to_string(),
        ),
        Some([db]) => (registry.current_catalog().to_string(), db.clone()),
        Some([cat, db]) => (cat.clone(), db.clone()),
        Some(_) => return Err(Error::invalid("use SHOW TABLES FROM [catalog.]database")),
    };
    let mut all = registry.catalog(&catalog)?.list_tables(&database).await?;
    all.extend(registry.temporaries_in(&catalog, &database));
    let mut names: Vec<String> = all
        .into_iter()
        .filter(|(_, t)| views.is_none_or(|v| t.is_view() == v))
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn filter(names: Vec<String>, like: Option<&LikePattern>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| like.is_none_or(|l| like_matches(l, n)))
        .collect()
}

/// `SHOW ... [NOT] LIKE|ILIKE 'pattern'`.
fn like_matches(like: &LikePattern, value: &str) -> bool {
    let matched = if like.case_insensitive {
        sql_like(&like.pattern.to_lowercase(), &value.to_lowercase())
    } else {
        sql_like(&like.pattern, value)
    };
    matched != like.negated
}

/// SQL LIKE without escapes: `%` matches any run of characters, `_` exactly one. Linear in the
/// pattern times the value (no backtracking blow-up on patterns like `%%%%a`).
pub fn sql_like(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // reachable[j]: the pattern prefix read so far can match the first j characters of the value.
    let mut reachable = vec![false; v.len() + 1];
    reachable[0] = true;
    for c in &p {
        let mut next = vec![false; v.len() + 1];
        match c {
            '%' => {
                let mut any = false;
                for j in 0..=v.len() {
                    any |= reachable[j];
                    next[j] = any;
                }
            }
            _ => {
                for j in 0..v.len() {
                    next[j + 1] = reachable[j] && (*c == '_' || *c == v[j]);
                }
            }
        }
        reachable = next;
    }
    reachable[v.len()]
}

pub(super) async fn describe(
    session: &Session,
    statement: &Statement,
    name: &ObjectName,
) -> Result<StatementResult> {
    let rows = describe_rows(session, statement, name).await?;
    string_rows(
        &["name", "type", "null", "key", "extras", "watermark"],
        rows,
    )
}

/// Flink's DESCRIBE rows: name, type, null, key, extras, watermark.
async fn describe_rows(
    session: &Session,
    statement: &Statement,
    name: &ObjectName,
) -> Result<Vec<Vec<String>>> {
    let registry = session.registry();
    let path = registry.qualify(&parts(name))?;
    let table = registry
        .lookup(&path)
        .await?
        .ok_or_else(|| Error::not_found(format!("table or view {path} does not exist")))?;
    let snapshot = session.snapshot(statement).await?;
    let ctx = PlanningContext::new(session.state(), &snapshot);
    let provider = tables::table_provider(&ctx, &path, &table)?;
    let read_schema = match provider.get_logical_plan() {
        Some(plan) => std::sync::Arc::new(plan.schema().as_arrow().clone()),
        None => provider.schema(),
    };
    let def = match &table {
        CatalogTable::Table(def) => Some(def),
        CatalogTable::View(_) => None,
    };
    let mut rows = Vec::new();
    for field in read_schema.fields() {
        let column = def.and_then(|d| d.columns.iter().find(|c| &c.name == field.name()));
        let mut ty = match column.map(|c| &c.kind) {
            Some(ColumnKind::Physical { data_type, .. }) => data_type.to_string(),
            _ => SqlType::from_arrow(field.data_type())
                .map(|t| t.to_string())
                .unwrap_or_else(|_| field.data_type().to_string()),
        };
        let watermark = def
            .and_then(|d| d.watermark.as_ref())
            .filter(|w| &w.column == field.name());
        if watermark.is_some() {
            ty.push_str(" *ROWTIME*");
        }
        let key = def
            .and_then(|d| d.primary_key.as_ref())
            .filter(|pk| pk.contains(field.name()))
            .map(|pk| format!("PRI({})", pk.join(", ")))
            .unwrap_or_default();
        let extras = match column.map(|c| &c.kind) {
            Some(ColumnKind::Computed { expr }) => format!("AS {expr}"),
            _ => String::new(),
        };
        rows.push(vec![
            field.name().clone(),
            ty,
            if field.is_nullable() { "TRUE" } else { "FALSE" }.to_string(),
            key,
            extras,
            watermark.map(|w| w.expr.clone()).unwrap_or_default(),
        ]);
    }
    Ok(rows)
}

/// `SHOW CREATE TABLE` text, in Flink's layout.
pub fn create_table_text(name: &str, def: &TableDef) -> String {
    let mut lines = Vec::new();
    for c in &def.columns {
        let mut line = match &c.kind {
            ColumnKind::Physical {
                data_type,
                nullable,
            } => {
                format!(
                    "  `{}` {}{}",
                    c.name,
                    data_type,
                    if *nullable { "" } else { " NOT NULL" }
                )
            }
            ColumnKind::Computed { expr } => format!("  `{}` AS {expr}", c.name),
        };
        if let Some(comment) = &c.comment {
            line.push_str(&format!(" COMMENT '{}'", comment.replace('\'', "''")));
        }
        lines.push(line);
    }
    if let Some(w) = &def.watermark {
        lines.push(format!("  WATERMARK FOR `{}` AS {}", w.column, w.expr));
    }
    if let Some(pk) = &def.primary_key {
        lines.push(format!(
            "  PRIMARY KEY ({}) NOT ENFORCED",
            pk.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut text = format!("CREATE TABLE {name} (\n{}\n)", lines.join(",\n"));
    if let Some(comment) = &def.comment {
        text.push_str(&format!("\nCOMMENT '{}'", comment.replace('\'', "''")));
    }
    if !def.partition_keys.is_empty() {
        text.push_str(&format!(
            "\nPARTITIONED BY ({})",
            def.partition_keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let options: Vec<String> = def
        .options
        .iter()
        .map(|(k, v)| {
            format!(
                "  '{}' = '{}'",
                k.replace('\'', "''"),
                v.replace('\'', "''")
            )
        })
        .collect();
    text.push_str(&format!("\nWITH (\n{}\n)", options.join(",\n")));
    text
}

/// `SET` without arguments: every option that is set, and the defaults.
pub(super) fn set_listing(options: &BTreeMap<String, String>) -> Result<StatementResult> {
    let mut all: BTreeMap<String, String> = super::config::DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    string_rows(
        &["key", "value"],
        all.into_iter().map(|(k, v)| vec![k, v]).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::sql_like;

    #[test]
    fn like_patterns() {
        assert!(sql_like("%a_c%", "xxabcyy"));
        assert!(!sql_like("a_c", "abbc"));
        assert!(sql_like("", ""));
        assert!(sql_like("%", ""));
        assert!(!sql_like(
            "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%b",
            &"a".repeat(200)
        ));
    }
}
