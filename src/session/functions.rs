//! `CREATE FUNCTION` / `DROP FUNCTION` / `SHOW USER FUNCTIONS`: the session's user-defined
//! functions. A function names an implementation class; Weir runs no JVM (or Python), so the
//! class must be one with a native implementation (`functions::udf`), checked when the function
//! is created (the error points at the class literal).
//!
//! Functions live with the session ([`UserFunctions`]): each is registered as a DataFusion scalar
//! UDF in the session state, under its (lower-cased) simple name, and registered again whenever
//! the state is rebuilt (`SET` / `RESET`), so batch and streaming queries see it. Catalog
//! (non-temporary) functions are kept for the session only: they are not persisted in the
//! catalog yet. Names are resolved as Flink does for unqualified calls, simplified: a function is
//! called by its simple name, so two user functions with the same simple name (in different
//! databases) cannot coexist, and only a `TEMPORARY SYSTEM` function may shadow a built-in.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionState;
use datafusion::sql::sqlparser::ast::ObjectName;

use super::ddl::parts;
use super::{Session, StatementResult, StatusResult};
use crate::error::{Error, Result};
use crate::functions::udf::{known_classes, native_udf};
use crate::sql::CreateFunction;

/// The scope a function was created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// `CREATE FUNCTION` (a catalog function; kept for the session only).
    Catalog,
    /// `CREATE TEMPORARY FUNCTION`.
    Temporary,
    /// `CREATE TEMPORARY SYSTEM FUNCTION`.
    TemporarySystem,
}

impl FunctionKind {
    fn describe(self) -> &'static str {
        match self {
            FunctionKind::Catalog => "catalog function",
            FunctionKind::Temporary => "temporary function",
            FunctionKind::TemporarySystem => "temporary system function",
        }
    }

    fn drop_statement(self) -> &'static str {
        match self {
            FunctionKind::Catalog => "DROP FUNCTION",
            FunctionKind::Temporary => "DROP TEMPORARY FUNCTION",
            FunctionKind::TemporarySystem => "DROP TEMPORARY SYSTEM FUNCTION",
        }
    }
}

/// One user-defined function.
#[derive(Debug, Clone)]
pub struct UserFunction {
    /// The name as shown (`catalog.database.name` for catalog and temporary functions).
    pub display: String,
    pub class: String,
    pub kind: FunctionKind,
}

/// The session's user-defined functions, by lower-cased simple name.
#[derive(Debug, Default, Clone)]
pub struct UserFunctions {
    functions: BTreeMap<String, UserFunction>,
}

impl UserFunctions {
    /// Registers every function in `state` (after it was rebuilt).
    ///
    /// # Errors
    /// Internal: a stored class lost its implementation (cannot happen: checked at creation).
    pub fn register(&self, state: &mut SessionState) -> Result<()> {
        for (name, f) in &self.functions {
            let udf = native_udf(&f.class, name).ok_or_else(|| {
                Error::internal(format!("function {name}: class {} is gone", f.class))
            })?;
            state.register_udf(Arc::new(udf))?;
        }
        Ok(())
    }

    /// Lower-cased simple names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.functions.keys().cloned().collect()
    }
}

fn ok(message: &str) -> Result<StatementResult> {
    Ok(StatementResult::Status(StatusResult::new(message)))
}

/// The simple name (lower-cased: function names are case-insensitive) and the display name.
fn names(session: &Session, name: &ObjectName, kind: FunctionKind) -> Result<(String, String)> {
    let p = parts(name);
    let simple = p
        .last()
        .ok_or_else(|| Error::invalid("a function needs a name"))?
        .to_ascii_lowercase();
    if kind == FunctionKind::TemporarySystem {
        return Ok((simple.clone(), simple));
    }
    let registry = session.registry();
    let path = registry
        .qualify(&p)
        .map_err(|e| e.context(format!("in function name `{name}`")))?;
    Ok((
        simple.clone(),
        format!("{}.{}.{}", path.catalog, path.database, simple),
    ))
}

/// `CREATE [TEMPORARY [SYSTEM]] FUNCTION`.
pub(super) async fn create(session: &mut Session, cf: &CreateFunction) -> Result<StatementResult> {
    let kind = match (cf.temporary, cf.system) {
        (_, true) => FunctionKind::TemporarySystem,
        (true, false) => FunctionKind::Temporary,
        (false, false) => FunctionKind::Catalog,
    };
    let located = |e: Error| match cf.class_span {
        Some(span) => e.with_span(span),
        None => e,
    };
    if let Some(lang) = cf.language.as_deref()
        && lang == "PYTHON"
    {
        return Err(located(Error::not_supported(format!(
            "Weir runs no Python; class '{}' (LANGUAGE PYTHON) has no native implementation",
            cf.class
        ))));
    }
    let (simple, display) = names(session, &cf.name, kind)?;
    if kind != FunctionKind::TemporarySystem {
        let p = parts(&cf.name);
        let path = session.registry().qualify(&p)?;
        let catalog = session.registry().catalog(&path.catalog)?;
        if catalog.get_database(&path.database).await?.is_none() {
            return Err(Error::not_found(format!(
                "database `{}`.`{}` does not exist",
                path.catalog, path.database
            )));
        }
    }
    if native_udf(&cf.class, &simple).is_none() {
        return Err(located(Error::not_supported(format!(
            "Weir runs no Java; class '{}' has no native implementation (known classes: {})",
            cf.class,
            known_classes().join(", ")
        ))));
    }
    if let Some(existing) = session.functions.functions.get(&simple) {
        if cf.if_not_exists && existing.kind == kind && existing.display == display {
            return ok("Execute statement succeeded.");
        }
        return Err(Error::already_exists(format!(
            "function `{simple}` already exists ({} {})",
            existing.kind.describe(),
            existing.display
        )));
    }
    let builtin = {
        let state = session.state();
        state.scalar_functions().contains_key(&simple)
            || state.aggregate_functions().contains_key(&simple)
            || state.window_functions().contains_key(&simple)
    };
    if builtin && kind != FunctionKind::TemporarySystem {
        return Err(Error::already_exists(format!(
            "`{simple}` is a built-in function; use CREATE TEMPORARY SYSTEM FUNCTION to shadow it"
        )));
    }
    let mut functions = session.functions.clone();
    functions.functions.insert(
        simple,
        UserFunction {
            display,
            class: cf.class.clone(),
            kind,
        },
    );
    session.state = session.build_state(&session.options, &functions)?;
    session.functions = functions;
    ok("Execute statement succeeded.")
}

/// `DROP [TEMPORARY [SYSTEM]] FUNCTION [IF EXISTS] name`.
pub(super) fn drop(
    session: &mut Session,
    name: &ObjectName,
    temporary: bool,
    system: bool,
    if_exists: bool,
) -> Result<StatementResult> {
    let kind = match (temporary, system) {
        (_, true) => FunctionKind::TemporarySystem,
        (true, false) => FunctionKind::Temporary,
        (false, false) => FunctionKind::Catalog,
    };
    let (simple, display) = names(session, name, kind)?;
    let Some(existing) = session.functions.functions.get(&simple) else {
        if if_exists {
            return ok("Execute statement succeeded.");
        }
        return Err(Error::not_found(format!(
            "function `{display}` does not exist"
        )));
    };
    if existing.kind != kind || existing.display != display {
        if if_exists && existing.display != display {
            return ok("Execute statement succeeded.");
        }
        return Err(Error::invalid(format!(
            "`{simple}` is a {} ({}); drop it with {}",
            existing.kind.describe(),
            existing.display,
            existing.kind.drop_statement()
        )));
    }
    let mut functions = session.functions.clone();
    functions.functions.remove(&simple);
    session.state = session.build_state(&session.options, &functions)?;
    session.functions = functions;
    ok("Execute statement succeeded.")
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, RecordBatch};
    use datafusion::arrow::util::display::array_value_to_string;
    use futures::TryStreamExt;

    use crate::stream::changes::materialize;
    use crate::{Session, SessionOptions, StatementResult};

    /// The rows of the last statement of `sql`, as `a,b` lines, sorted.
    async fn rows(s: &mut Session, sql: &str) -> Vec<String> {
        let mut results = s
            .execute_sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let Some(StatementResult::Rows(r)) = results.pop() else {
            panic!("no rows from {sql}")
        };
        let (schema, changelog) = (r.schema.clone(), r.changelog);
        let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
        let batch = if changelog {
            materialize(&schema, &batches).unwrap()
        } else {
            datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap()
        };
        let mut out: Vec<String> = (0..batch.num_rows())
            .map(|i| {
                batch
                    .columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(i) {
                            "NULL".to_string()
                        } else {
                            array_value_to_string(c, i).unwrap()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        out.sort();
        out
    }

    async fn fails(s: &mut Session, sql: &str) -> String {
        match s.execute_sql(sql).await {
            Ok(_) => panic!("{sql} succeeded"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn functions_are_created_used_listed_and_dropped() {
        let mut s = Session::open(SessionOptions::default()).await.unwrap();
        s.execute_sql("CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar'")
            .await
            .unwrap();
        let q = "SELECT s, COUNT_CHAR(s, 'a') FROM (VALUES ('banana'), ('xyz'), (NULL)) AS t(s)";
        let expected = vec!["NULL,NULL", "banana,3", "xyz,0"];
        assert_eq!(rows(&mut s, q).await, expected);
        // SET rebuilds the engine state: the function survives, in both engines.
        s.execute_sql("SET 'parallelism.default' = '2'")
            .await
            .unwrap();
        s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
            .await
            .unwrap();
        assert_eq!(rows(&mut s, q).await, expected);
        s.execute_sql("RESET").await.unwrap();
        assert_eq!(rows(&mut s, q).await, expected);

        assert_eq!(
            rows(&mut s, "SHOW USER FUNCTIONS").await,
            vec!["count_char"]
        );
        assert!(
            rows(&mut s, "SHOW FUNCTIONS")
                .await
                .contains(&"count_char".to_string())
        );

        let e = fails(
            &mut s,
            "CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar'",
        )
        .await;
        assert!(e.contains("already exists"), "{e}");
        s.execute_sql(
            "CREATE FUNCTION IF NOT EXISTS count_char AS 'com.github.nexmark.flink.udf.CountChar'",
        )
        .await
        .unwrap();
        let e = fails(&mut s, "DROP TEMPORARY FUNCTION count_char").await;
        assert!(e.contains("drop it with DROP FUNCTION"), "{e}");
        s.execute_sql("DROP FUNCTION count_char").await.unwrap();
        assert!(rows(&mut s, "SHOW USER FUNCTIONS").await.is_empty());
        let e = fails(&mut s, q).await;
        assert!(e.to_lowercase().contains("count_char"), "{e}");
        let e = fails(&mut s, "DROP FUNCTION count_char").await;
        assert!(e.contains("does not exist"), "{e}");
        s.execute_sql("DROP FUNCTION IF EXISTS count_char")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn system_functions_shadow_built_ins_and_classes_are_checked() {
        let mut s = Session::open(SessionOptions::default()).await.unwrap();
        let e = fails(
            &mut s,
            "CREATE FUNCTION upper AS 'com.github.nexmark.flink.udf.CountChar'",
        )
        .await;
        assert!(e.contains("built-in"), "{e}");
        s.execute_sql(
            "CREATE TEMPORARY SYSTEM FUNCTION upper AS 'com.github.nexmark.flink.udf.CountChar'",
        )
        .await
        .unwrap();
        assert_eq!(rows(&mut s, "SELECT upper('abcb', 'b')").await, vec!["2"]);
        s.execute_sql("DROP TEMPORARY SYSTEM FUNCTION upper")
            .await
            .unwrap();
        assert_eq!(rows(&mut s, "SELECT upper('abc')").await, vec!["ABC"]);

        let e = fails(
            &mut s,
            "CREATE TEMPORARY FUNCTION f AS 'x.Y' LANGUAGE PYTHON",
        )
        .await;
        assert!(e.contains("Weir runs no Python"), "{e}");
        let e = fails(&mut s, "CREATE FUNCTION f AS 'org.example.Udf'").await;
        assert!(
            e.contains("Weir runs no Java; class 'org.example.Udf' has no native implementation"),
            "{e}"
        );
        let e = fails(
            &mut s,
            "CREATE FUNCTION nodb.f AS 'com.github.nexmark.flink.udf.CountChar'",
        )
        .await;
        assert!(
            e.contains("database `default_catalog`.`nodb` does not exist"),
            "{e}"
        );
    }
}
