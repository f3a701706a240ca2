//! DDL statements: CREATE / DROP / ALTER of tables, views, databases and catalogs, and USE.
//! Definitions are checked (connector options, computed columns, watermarks, primary keys) before
//! anything is stored, so a bad definition never reaches the catalog.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::ObjectName;

use super::{Session, StatementResult, StatusResult};
use crate::catalog::registry::ObjectPath;
use crate::catalog::snapshot::CatalogSnapshot;
use crate::catalog::{
    CatalogTable, ColumnDef, ColumnKind, DatabaseDef, TableDef, ViewDef, WatermarkDef,
};
use crate::connectors;
use crate::error::{Error, Result};
use crate::planner::{self, PlanningContext, tables};
use crate::sql::{
    AlterTableAction, AlterViewAction, ColumnSpecKind, CreateTable, CreateView, ObjectKind,
    Statement,
};
use crate::types::SqlType;

fn ok(message: &str) -> Result<StatementResult> {
    Ok(StatementResult::Status(StatusResult::new(message)))
}

/// The identifier parts of a name, as written.
pub(crate) fn parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(|i| i.value.clone())
                .unwrap_or_else(|| p.to_string())
        })
        .collect()
}

pub(super) async fn execute(
    session: &mut Session,
    statement: &Statement,
) -> Result<StatementResult> {
    match statement {
        Statement::CreateTable(ct) => create_table(session, statement, ct).await,
        Statement::CreateView(cv) => create_view(session, statement, cv).await,
        Statement::CreateDatabase {
            name,
            if_not_exists,
            comment,
            properties,
        } => {
            let (catalog, db) = database_path(session, name)?;
            let def = DatabaseDef {
                comment: comment.clone(),
                properties: properties.iter().cloned().collect(),
            };
            session
                .registry()
                .catalog(&catalog)?
                .create_database(&db, def, *if_not_exists)
                .await?;
            ok("Execute statement succeeded.")
        }
        Statement::CreateCatalog {
            name,
            if_not_exists,
            options,
        } => {
            let options: BTreeMap<String, String> = options.iter().cloned().collect();
            session
                .registry_mut()
                .create_catalog(name, options, *if_not_exists)?;
            ok("Execute statement succeeded.")
        }
        Statement::UseCatalog(name) => {
            session.registry_mut().use_catalog(name)?;
            ok("Execute statement succeeded.")
        }
        Statement::UseDatabase(name) => {
            let (catalog, db) = database_path(session, name)?;
            session
                .registry_mut()
                .use_database(Some(&catalog), &db)
                .await?;
            ok("Execute statement succeeded.")
        }
        Statement::Drop {
            kind,
            name,
            if_exists,
            temporary,
            cascade,
        } => drop(session, *kind, name, *if_exists, *temporary, *cascade).await,
        Statement::AlterTable {
            name,
            if_exists,
            action,
        } => alter_table(session, name, *if_exists, action).await,
        Statement::AlterView { name, action } => alter_view(session, name, action).await,
        other => Err(Error::internal(format!(
            "statement not dispatched: {other:?}"
        ))),
    }
}

fn database_path(session: &Session, name: &ObjectName) -> Result<(String, String)> {
    match parts(name).as_slice() {
        [db] => Ok((session.registry().current_catalog().to_string(), db.clone())),
        [cat, db] => Ok((cat.clone(), db.clone())),
        _ => Err(Error::invalid(format!(
            "`{name}` is not a valid database name: use [catalog.]database"
        ))),
    }
}

async fn ensure_database(session: &Session, path: &ObjectPath) -> Result<()> {
    let catalog = session.registry().catalog(&path.catalog)?;
    if catalog.get_database(&path.database).await?.is_none() {
        return Err(Error::not_found(format!(
            "database `{}`.`{}` does not exist",
            path.catalog, path.database
        )));
    }
    Ok(())
}

/// Turns parsed DDL into a stored definition, checking names and keys.
fn table_def(ct: &CreateTable) -> Result<TableDef> {
    let mut seen = std::collections::HashSet::new();
    let mut columns = Vec::new();
    for c in &ct.columns {
        if !seen.insert(c.name.clone()) {
            return Err(
                Error::invalid(format!("column `{}` is defined twice", c.name)).with_span(c.span),
            );
        }
        let kind = match &c.kind {
            ColumnSpecKind::Physical {
                data_type,
                nullable,
            } => ColumnKind::Physical {
                data_type: data_type.clone(),
                nullable: *nullable,
            },
            ColumnSpecKind::Computed { expr } => ColumnKind::Computed {
                expr: expr.to_string(),
            },
            ColumnSpecKind::Metadata { .. } => {
                return Err(Error::not_supported(format!(
                    "metadata column `{}` is not supported yet",
                    c.name
                ))
                .with_span(c.span));
            }
        };
        columns.push(ColumnDef {
            name: c.name.clone(),
            kind,
            comment: c.comment.clone(),
        });
    }
    let physical = |columns: &[ColumnDef], name: &str| {
        columns
            .iter()
            .any(|c| c.name == name && matches!(c.kind, ColumnKind::Physical { .. }))
    };
    if let Some(pk) = &ct.primary_key {
        for k in pk {
            if !physical(&columns, k) {
                return Err(Error::invalid(format!(
                    "PRIMARY KEY column `{k}` is not a physical column of the table"
                )));
            }
        }
        // Flink makes primary key columns NOT NULL.
        for c in columns.iter_mut() {
            if pk.contains(&c.name)
                && let ColumnKind::Physical { nullable, .. } = &mut c.kind
            {
                *nullable = false;
            }
        }
    }
    for p in &ct.partition_by {
        if !physical(&columns, p) {
            return Err(Error::invalid(format!(
                "PARTITIONED BY column `{p}` is not a physical column of the table"
            )));
        }
    }
    let watermark = match &ct.watermark {
        Some(w) => {
            if !columns.iter().any(|c| c.name == w.column) {
                return Err(Error::not_found(format!(
                    "WATERMARK FOR `{}`: no such column",
                    w.column
                ))
                .with_span(w.span));
            }
            Some(WatermarkDef {
                column: w.column.clone(),
                expr: w.expr.to_string(),
            })
        }
        None => None,
    };
    let mut options = BTreeMap::new();
    for (k, v) in &ct.options {
        if options.insert(k.clone(), v.clone()).is_some() {
            return Err(Error::invalid(format!("option '{k}' is given twice")));
        }
    }
    Ok(TableDef {
        columns,
        watermark,
        primary_key: ct.primary_key.clone(),
        partition_keys: ct.partition_by.clone(),
        options,
        comment: ct.comment.clone(),
    })
}

/// Checks a definition by building its provider and planning its computed columns and watermark.
fn check_table(session: &Session, path: &ObjectPath, def: &TableDef) -> Result<()> {
    // A Hive-format table (no connector, or 'connector' = 'hive') in a Hive catalog is checked by
    // the catalog when it stores it.
    if matches!(def.connector().map(str::trim), None | Some("hive"))
        && session
            .registry()
            .catalog(&path.catalog)
            .is_ok_and(|c| c.catalog_type() == "hive")
    {
        return Ok(());
    }
    connectors::validate_table(&path.dotted(), def)?;
    let mut snapshot = CatalogSnapshot {
        current_catalog: path.catalog.clone(),
        current_database: path.database.clone(),
        tables: Default::default(),
        providers: Default::default(),
    };
    snapshot
        .tables
        .insert(path.clone(), CatalogTable::Table(def.clone()));
    let ctx = PlanningContext::new(session.state(), &snapshot);
    ctx.source(path)?;
    tables::check_watermark(&ctx, path, def)
}

async fn create_table(
    session: &mut Session,
    statement: &Statement,
    ct: &CreateTable,
) -> Result<StatementResult> {
    let path = session.registry().qualify(&parts(&ct.name))?;
    ensure_database(session, &path).await?;
    if let Some(query) = &ct.as_query {
        return create_table_as(session, statement, ct, &path, query).await;
    }
    let def = table_def(ct)?;
    check_table(session, &path, &def)?;
    store(
        session,
        &path,
        CatalogTable::Table(def),
        ct.temporary,
        ct.if_not_exists,
    )
    .await?;
    ok("Execute statement succeeded.")
}

async fn store(
    session: &mut Session,
    path: &ObjectPath,
    table: CatalogTable,
    temporary: bool,
    if_not_exists: bool,
) -> Result<()> {
    if temporary {
        session
            .registry_mut()
            .create_temporary(path.clone(), table, if_not_exists)
    } else {
        session
            .registry()
            .catalog(&path.catalog)?
            .create_table(&path.database, &path.name, table, if_not_exists)
            .await
    }
}

/// CREATE TABLE ... AS query: the table takes the query's columns; if filling it fails, the new
/// table is dropped again.
async fn create_table_as(
    session: &mut Session,
    statement: &Statement,
    ct: &CreateTable,
    path: &ObjectPath,
    query: &datafusion::sql::sqlparser::ast::Query,
) -> Result<StatementResult> {
    if session.registry().lookup(path).await?.is_some() {
        if ct.if_not_exists {
            return ok("Execute statement succeeded.");
        }
        return Err(Error::already_exists(format!(
            "table {path} already exists"
        )));
    }
    let snapshot = session.snapshot(statement).await?;
    let plan = planner::plan_query(&PlanningContext::new(session.state(), &snapshot), query)?;
    let mut def = table_def(ct)?;
    if def
        .columns
        .iter()
        .any(|c| matches!(c.kind, ColumnKind::Physical { .. }))
    {
        return Err(Error::not_supported(
            "CREATE TABLE AS with a column list is not supported yet",
        ));
    }
    let mut query_columns = Vec::new();
    for field in plan.schema().fields() {
        query_columns.push(ColumnDef {
            name: field.name().clone(),
            kind: ColumnKind::Physical {
                data_type: SqlType::from_arrow(field.data_type())?,
                nullable: field.is_nullable(),
            },
            comment: None,
        });
    }
    query_columns.append(&mut def.columns);
    def.columns = query_columns;
    check_table(session, path, &def)?;
    store(session, path, CatalogTable::Table(def), ct.temporary, false).await?;
    let insert = crate::sql::Insert {
        table: ObjectName::from(vec![
            datafusion::sql::sqlparser::ast::Ident::new(&path.catalog),
            datafusion::sql::sqlparser::ast::Ident::new(&path.database),
            datafusion::sql::sqlparser::ast::Ident::new(&path.name),
        ]),
        overwrite: false,
        partition: vec![],
        columns: vec![],
        source: Box::new(query.clone()),
        span: Default::default(),
    };
    let filled = async {
        let snapshot = session.snapshot(&Statement::Insert(insert.clone())).await?;
        let (_, plan) = planner::insert::plan_insert(
            &PlanningContext::new(session.state(), &snapshot),
            &insert,
        )?;
        session.run_dml(&plan).await
    }
    .await;
    match filled {
        Ok(rows) => Ok(super::inserted(rows)),
        Err(e) => {
            if ct.temporary {
                session.registry_mut().drop_temporary(path);
            } else if let Ok(catalog) = session.registry().catalog(&path.catalog) {
                let _ = catalog
                    .drop_table(&path.database, &path.name, false, true)
                    .await;
            }
            Err(e.context(format!(
                "CREATE TABLE {path} AS ...: the table was not created"
            )))
        }
    }
}

async fn create_view(
    session: &mut Session,
    statement: &Statement,
    cv: &CreateView,
) -> Result<StatementResult> {
    let path = session.registry().qualify(&parts(&cv.name))?;
    ensure_database(session, &path).await?;
    // Plan the query now, so a broken view is rejected when it is defined.
    let snapshot = session.snapshot(statement).await?;
    let plan = planner::plan_query(&PlanningContext::new(session.state(), &snapshot), &cv.query)?;
    if !cv.columns.is_empty() && cv.columns.len() != plan.schema().fields().len() {
        return Err(Error::invalid(format!(
            "view {path} names {} columns but its query returns {}",
            cv.columns.len(),
            plan.schema().fields().len()
        )));
    }
    let def = ViewDef {
        query: planner::temporal::query_text(&cv.query),
        columns: cv.columns.clone(),
        comment: cv.comment.clone(),
    };
    store(
        session,
        &path,
        CatalogTable::View(def),
        cv.temporary,
        cv.if_not_exists,
    )
    .await?;
    ok("Execute statement succeeded.")
}

async fn drop(
    session: &mut Session,
    kind: ObjectKind,
    name: &ObjectName,
    if_exists: bool,
    temporary: bool,
    cascade: bool,
) -> Result<StatementResult> {
    match kind {
        ObjectKind::Catalog => {
            let [name] = parts(name)
                .try_into()
                .map_err(|_| Error::invalid(format!("`{name}` is not a catalog name")))?;
            session.registry_mut().drop_catalog(&name, if_exists)?;
        }
        ObjectKind::Database => {
            let (catalog, db) = database_path(session, name)?;
            if catalog == session.registry().current_catalog()
                && db == session.registry().current_database()
            {
                return Err(Error::invalid(format!(
                    "cannot drop the current database `{db}`; USE another one first"
                )));
            }
            session
                .registry()
                .catalog(&catalog)?
                .drop_database(&db, if_exists, cascade)
                .await?;
        }
        ObjectKind::Table | ObjectKind::View => {
            let path = session.registry().qualify(&parts(name))?;
            let view = kind == ObjectKind::View;
            if let Some(t) = session.registry().temporary(&path) {
                if t.is_view() != view {
                    return Err(Error::invalid(format!(
                        "{path} is a temporary {}, not a {kind}",
                        if t.is_view() { "view" } else { "table" }
                    )));
                }
                session.registry_mut().drop_temporary(&path);
            } else if temporary {
                if !if_exists {
                    return Err(Error::not_found(format!(
                        "temporary {kind} {path} does not exist"
                    )));
                }
            } else {
                session
                    .registry()
                    .catalog(&path.catalog)?
                    .drop_table(&path.database, &path.name, view, if_exists)
                    .await?;
            }
        }
        ObjectKind::Function => {
            return Err(Error::not_supported("DROP FUNCTION is not supported yet"));
        }
    }
    ok("Execute statement succeeded.")
}

async fn alter_table(
    session: &mut Session,
    name: &ObjectName,
    if_exists: bool,
    action: &AlterTableAction,
) -> Result<StatementResult> {
    let path = session.registry().qualify(&parts(name))?;
    if session.registry().temporary(&path).is_some() {
        return Err(Error::not_supported(
            "ALTER TABLE on a temporary table is not supported yet",
        ));
    }
    let catalog = std::sync::Arc::clone(session.registry().catalog(&path.catalog)?);
    let Some(table) = catalog.get_table(&path.database, &path.name).await? else {
        if if_exists {
            return ok("Execute statement succeeded.");
        }
        return Err(Error::not_found(format!("table {path} does not exist")));
    };
    let CatalogTable::Table(mut def) = table else {
        return Err(Error::invalid(format!("{path} is a view; use ALTER VIEW")));
    };
    match action {
        AlterTableAction::RenameTo(new) => {
            let target = rename_target(session, &path, new)?;
            if target.catalog != path.catalog || target.database != path.database {
                return Err(Error::not_supported(
                    "ALTER TABLE ... RENAME TO another database is not supported",
                ));
            }
            catalog
                .rename_table(&path.database, &path.name, &target.name)
                .await?;
        }
        AlterTableAction::Set(options) => {
            for (k, v) in options {
                def.options.insert(k.clone(), v.clone());
            }
            check_table(session, &path, &def)?;
            catalog
                .alter_table(&path.database, &path.name, CatalogTable::Table(def))
                .await?;
        }
        AlterTableAction::Reset(keys) => {
            for k in keys {
                if k == "connector" {
                    return Err(Error::invalid("the 'connector' option cannot be reset"));
                }
                def.options.remove(k);
            }
            check_table(session, &path, &def)?;
            catalog
                .alter_table(&path.database, &path.name, CatalogTable::Table(def))
                .await?;
        }
    }
    ok("Execute statement succeeded.")
}

/// A RENAME TO name: a bare name stays in the object's own database.
fn rename_target(session: &Session, path: &ObjectPath, new: &ObjectName) -> Result<ObjectPath> {
    match parts(new).as_slice() {
        [name] => Ok(ObjectPath {
            name: name.clone(),
            ..path.clone()
        }),
        more => session.registry().qualify(more),
    }
}

async fn alter_view(
    session: &mut Session,
    name: &ObjectName,
    action: &AlterViewAction,
) -> Result<StatementResult> {
    let path = session.registry().qualify(&parts(name))?;
    let catalog = std::sync::Arc::clone(session.registry().catalog(&path.catalog)?);
    let Some(CatalogTable::View(view)) = catalog.get_table(&path.database, &path.name).await?
    else {
        return Err(Error::not_found(format!("view {path} does not exist")));
    };
    match action {
        AlterViewAction::RenameTo(new) => {
            let target = rename_target(session, &path, new)?;
            if target.catalog != path.catalog || target.database != path.database {
                return Err(Error::not_supported(
                    "ALTER VIEW ... RENAME TO another database is not supported",
                ));
            }
            catalog
                .rename_table(&path.database, &path.name, &target.name)
                .await?;
        }
        AlterViewAction::As(query) => {
            let statement = Statement::Query(query.clone());
            let snapshot = session.snapshot(&statement).await?;
            planner::plan_query(&PlanningContext::new(session.state(), &snapshot), query)?;
            let def = ViewDef {
                query: planner::temporal::query_text(query),
                ..view
            };
            catalog
                .alter_table(&path.database, &path.name, CatalogTable::View(def))
                .await?;
        }
    }
    ok("Execute statement succeeded.")
}
