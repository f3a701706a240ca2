//! Name resolution before planning: which catalog objects does a statement use?
//!
//! [`statement_relations`] lists the table names a statement mentions (in `FROM`, in `JOIN`, in
//! window TVFs' `TABLE t` argument, INSERT targets), leaving out names of its own CTEs.
//! [`build_snapshot`] looks them up in the catalogs (asynchronously), follows views into the
//! objects they use, and returns the [`CatalogSnapshot`] the planner works from. Names that do not
//! resolve are left out; the planner reports them with their position.
//!
//! A name the parser encoded with an `OPTIONS` hint (see [`crate::sql::hints`]) is looked up
//! under the table's own name and stored in the snapshot under the encoded name, as a copy of the
//! table's definition with the hinted options merged into its `WITH` options; [`display_name`]
//! gives the name back for messages.
//!
//! A view's query is planned in the view's own catalog and database: [`qualify_query`] rewrites
//! its unqualified names to full ones before it is resolved and planned.

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, ObjectNamePart,
    Visit, Visitor,
};

use crate::catalog::CatalogTable;
use crate::catalog::registry::{CatalogRegistry, ObjectPath};
use crate::catalog::snapshot::CatalogSnapshot;
use crate::error::{Error, Result};
use crate::sql::{self, Statement};

/// Collects CTE names anywhere in a query.
#[derive(Default)]
struct CteNames(HashSet<String>);

impl Visitor for CteNames {
    type Break = ();
    fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.0.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }
}

fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => id.value.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The argument `TABLE t` of a window TVF, as the dialect produces it: `TABLE(t, ...)`.
fn tvf_table_arg(expr: &ast::Expr) -> Option<Vec<String>> {
    let ast::Expr::Function(f) = expr else {
        return None;
    };
    if !f.name.to_string().eq_ignore_ascii_case("TABLE") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.first()? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Identifier(id))) => {
            Some(vec![id.value.clone()])
        }
        FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::CompoundIdentifier(ids))) => {
            Some(ids.iter().map(|i| i.value.clone()).collect())
        }
        _ => None,
    }
}

/// Table names used by a query (or any AST node), without the query's CTE names.
pub fn relations<V: Visit>(node: &V) -> Vec<Vec<String>> {
    let mut ctes = CteNames::default();
    let _ = node.visit(&mut ctes);
    let mut out = Vec::new();
    let _ = ast::visit_relations(node, |name| {
        let parts = name_parts(name);
        if !(parts.len() == 1 && ctes.0.contains(&parts[0])) {
            out.push(parts);
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = ast::visit_expressions(node, |expr| {
        if let Some(parts) = tvf_table_arg(expr) {
            out.push(parts);
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// Table names a statement uses.
pub fn statement_relations(statement: &Statement) -> Vec<Vec<String>> {
    match statement {
        Statement::Query(q) => relations(q.as_ref()),
        Statement::Insert(insert) => insert_relations(insert),
        Statement::StatementSet(inserts) => inserts.iter().flat_map(insert_relations).collect(),
        Statement::CreateTable(ct) => ct
            .as_query
            .as_ref()
            .map(|q| relations(q.as_ref()))
            .unwrap_or_default(),
        Statement::CreateView(cv) => relations(cv.query.as_ref()),
        Statement::Explain { statement, .. } => statement_relations(statement),
        Statement::Describe { name } => vec![name_parts(name)],
        Statement::Show(
            sql::Show::Columns { table, .. }
            | sql::Show::CreateTable(table)
            | sql::Show::CreateView(table),
        ) => {
            vec![name_parts(table)]
        }
        _ => Vec::new(),
    }
}

fn insert_relations(insert: &sql::Insert) -> Vec<Vec<String>> {
    let mut out = relations(insert.source.as_ref());
    out.push(name_parts(&insert.table));
    out
}

/// Rewrites a query's table names (not its CTE names) to `catalog.database.name`.
pub fn qualify_query(query: &mut ast::Query, catalog: &str, database: &str) {
    let mut ctes = CteNames::default();
    let _ = Visit::visit(&*query, &mut ctes);
    let qualify = |name: &mut ObjectName| {
        let parts = name_parts(name);
        if parts.len() == 1 && ctes.0.contains(&parts[0]) {
            return;
        }
        let mut full: Vec<ObjectNamePart> = Vec::new();
        if parts.len() < 3 {
            full.push(ObjectNamePart::Identifier(Ident::with_quote('`', catalog)));
        }
        if parts.len() < 2 {
            full.push(ObjectNamePart::Identifier(Ident::with_quote('`', database)));
        }
        full.append(&mut name.0);
        name.0 = full;
    };
    let _ = ast::visit_relations_mut(query, |name| {
        qualify(name);
        ControlFlow::<()>::Continue(())
    });
    let _ = ast::visit_expressions_mut(query, |expr| {
        if tvf_table_arg(expr).is_some()
            && let ast::Expr::Function(f) = expr
            && let FunctionArguments::List(list) = &mut f.args
            && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) = list.args.first_mut()
        {
            let mut name = match first {
                ast::Expr::Identifier(id) => ObjectName::from(vec![id.clone()]),
                ast::Expr::CompoundIdentifier(ids) => ObjectName::from(ids.clone()),
                _ => return ControlFlow::<()>::Continue(()),
            };
            qualify(&mut name);
            let ids = name
                .0
                .into_iter()
                .filter_map(|p| p.as_ident().cloned())
                .collect();
            *first = ast::Expr::CompoundIdentifier(ids);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Looks up every name (and, through views, every name they use) into a snapshot.
pub async fn build_snapshot(
    registry: &CatalogRegistry,
    names: Vec<Vec<String>>,
) -> Result<CatalogSnapshot> {
    let mut snapshot = CatalogSnapshot {
        current_catalog: registry.current_catalog().to_string(),
        current_database: registry.current_database().to_string(),
        tables: Default::default(),
        providers: Default::default(),
    };
    let mut pending: Vec<ObjectPath> = names.iter().filter_map(|n| snapshot.qualify(n)).collect();
    let mut seen: HashSet<ObjectPath> = HashSet::new();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let hinted = sql::hints::decode(&path.name);
        let lookup_path = match &hinted {
            Some((name, _)) => ObjectPath {
                name: (*name).to_string(),
                ..path.clone()
            },
            None => path.clone(),
        };
        let Some(mut table) = registry.lookup(&lookup_path).await? else {
            continue;
        };
        if let Some((name, options)) = hinted {
            table = with_hint_options(table, name, options)?;
        }
        if let CatalogTable::View(view) = &table {
            // A view that does not parse is reported when it is planned.
            if let Ok(mut query) = sql::parse_query(&view.query) {
                qualify_query(&mut query, &path.catalog, &path.database);
                pending.extend(relations(&query).iter().filter_map(|n| snapshot.qualify(n)));
            }
        }
        if let CatalogTable::Table(def) = &table
            && registry.temporary(&lookup_path).is_none()
            && let Ok(catalog) = registry.catalog(&path.catalog)
        {
            // A catalog that serves the table itself (Hive); its errors surface when the table
            // is planned, so statements that do not scan it are unaffected.
            match catalog
                .table_provider(&path.database, &lookup_path.name, def)
                .await
            {
                Ok(None) => {}
                Ok(Some(p)) => {
                    snapshot.providers.insert(path.clone(), Ok(p));
                }
                Err(e) => {
                    snapshot.providers.insert(path.clone(), Err(e));
                }
            }
        }
        snapshot.tables.insert(path, table);
    }
    Ok(snapshot)
}

/// A table's definition for one hinted reference: its `WITH` options overridden and extended by
/// the `OPTIONS` hint's (the catalog's definition is unchanged).
///
/// # Errors
/// `Invalid` for a view: hints apply to tables.
fn with_hint_options(
    table: CatalogTable,
    name: &str,
    options: BTreeMap<String, String>,
) -> Result<CatalogTable> {
    match table {
        CatalogTable::Table(mut def) => {
            def.options.extend(options);
            Ok(CatalogTable::Table(def))
        }
        CatalogTable::View(_) => Err(Error::invalid(format!(
            "OPTIONS hint on view `{name}`: hints apply to tables"
        ))),
    }
}

/// The table's own name of a name part the parser may have encoded with an `OPTIONS` hint
/// (`orders /*+ OPTIONS(..) */` is looked up under an encoded name): use it wherever a table
/// name reaches a message.
pub fn display_name(name: &str) -> &str {
    sql::hints::display_name(name)
}

/// `path` with its name as the user wrote it (see [`display_name`]), for messages.
pub fn display_path(path: &ObjectPath) -> ObjectPath {
    ObjectPath {
        catalog: path.catalog.clone(),
        database: path.database.clone(),
        name: display_name(&path.name).to_string(),
    }
}
