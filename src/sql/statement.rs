//! The typed statements the Flink dialect parser produces. Queries, expressions and names stay
//! sqlparser AST nodes (DataFusion plans them); the statements sqlparser does not know, or knows in
//! another dialect's shape (Flink DDL with `WATERMARK FOR` and `WITH (...)`, `CREATE CATALOG`,
//! `SHOW ...`, `SET 'k' = 'v'`), get their own types here.

use datafusion::sql::sqlparser::ast::{self, ObjectName};

use crate::error::Span;
use crate::types::SqlType;

/// One statement of a script, with where it stands in the script and its own text.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    pub statement: Statement,
    /// Where the statement stands in the script (line:column, 1-based).
    pub span: Span,
    /// The statement's source text, without the trailing `;`.
    pub text: String,
}

/// A Flink SQL statement.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built once per statement; boxing would only add noise
pub enum Statement {
    /// `SELECT ...`, `VALUES ...`, `WITH ... SELECT ...`.
    Query(Box<ast::Query>),
    /// `INSERT INTO|OVERWRITE t [PARTITION (..)] [(cols)] SELECT/VALUES`.
    Insert(Insert),
    /// `CREATE [TEMPORARY] TABLE ... [WITH (...)]`, optionally `AS SELECT ...`.
    CreateTable(CreateTable),
    /// `CREATE [TEMPORARY] VIEW [IF NOT EXISTS] name [(cols)] [COMMENT '..'] AS query`.
    CreateView(CreateView),
    /// `CREATE DATABASE [IF NOT EXISTS] [catalog.]db [COMMENT '..'] [WITH (...)]`.
    CreateDatabase {
        name: ObjectName,
        if_not_exists: bool,
        comment: Option<String>,
        properties: Vec<(String, String)>,
    },
    /// `CREATE CATALOG [IF NOT EXISTS] name WITH ('type' = '..', ...)`.
    CreateCatalog {
        name: String,
        if_not_exists: bool,
        options: Vec<(String, String)>,
    },
    /// `USE CATALOG name`.
    UseCatalog(String),
    /// `USE [catalog.]db`.
    UseDatabase(ObjectName),
    /// `DROP [TEMPORARY] TABLE|VIEW|DATABASE|CATALOG [IF EXISTS] name [RESTRICT|CASCADE]`.
    Drop {
        kind: ObjectKind,
        name: ObjectName,
        if_exists: bool,
        temporary: bool,
        cascade: bool,
    },
    /// `ALTER TABLE [IF EXISTS] name RENAME TO new` / `SET ('k' = 'v', ...)` / `RESET ('k', ...)`.
    AlterTable {
        name: ObjectName,
        if_exists: bool,
        action: AlterTableAction,
    },
    /// `ALTER VIEW name RENAME TO new` / `ALTER VIEW name AS query`.
    AlterView {
        name: ObjectName,
        action: AlterViewAction,
    },
    /// `SHOW CATALOGS|DATABASES|TABLES|VIEWS|FUNCTIONS|...`.
    Show(Show),
    /// `DESCRIBE|DESC [EXTENDED] name`.
    Describe { name: ObjectName },
    /// `EXPLAIN [PLAN FOR] [ESTIMATED_COST|CHANGELOG_MODE|...] statement`.
    Explain {
        details: Vec<String>,
        analyze: bool,
        statement: Box<Statement>,
    },
    /// `SET` (list) or `SET 'key' = 'value'`.
    Set(Option<(String, String)>),
    /// `RESET` (all) or `RESET 'key'`.
    Reset(Option<String>),
    /// `EXECUTE STATEMENT SET BEGIN insert; ... END` / `BEGIN STATEMENT SET; ...; END`.
    StatementSet(Vec<Insert>),
    /// `CREATE [TEMPORARY [SYSTEM]] FUNCTION [IF NOT EXISTS] name AS 'class' [LANGUAGE ..]`.
    CreateFunction(CreateFunction),
    /// `DROP [TEMPORARY [SYSTEM]] FUNCTION [IF EXISTS] name`.
    DropFunction {
        name: ObjectName,
        temporary: bool,
        system: bool,
        if_exists: bool,
    },
    /// `STOP JOB '<id>' [WITH SAVEPOINT] [WITH DRAIN]`.
    StopJob {
        id: String,
        savepoint: bool,
        drain: bool,
    },
}

/// The kind of catalog object a statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Table,
    View,
    Database,
    Catalog,
    Function,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Table => "table",
            ObjectKind::View => "view",
            ObjectKind::Database => "database",
            ObjectKind::Catalog => "catalog",
            ObjectKind::Function => "function",
        })
    }
}

/// `CREATE FUNCTION`: a named function implemented by a (JVM) class. Weir maps the class name
/// to a native implementation when the statement runs.
#[derive(Debug, Clone)]
pub struct CreateFunction {
    /// `[catalog.][db.]name` (a system function: one part).
    pub name: ObjectName,
    /// The implementation class, e.g. `com.github.nexmark.flink.udf.CountChar`.
    pub class: String,
    /// Where the class literal is in the script (errors about the class point there).
    pub class_span: Option<Span>,
    /// `LANGUAGE JAVA|SCALA|PYTHON` (upper case), if given.
    pub language: Option<String>,
    pub temporary: bool,
    /// `TEMPORARY SYSTEM`: a function without catalog and database, shadowing built-ins.
    pub system: bool,
    pub if_not_exists: bool,
}

/// `INSERT INTO|OVERWRITE`.
#[derive(Debug, Clone)]
pub struct Insert {
    pub table: ObjectName,
    pub overwrite: bool,
    /// Static partition values: `PARTITION (dt = '2024-01-01', ...)`.
    pub partition: Vec<(String, ast::Expr)>,
    /// An explicit column list `INSERT INTO t (a, b) ...`; empty means all physical columns.
    pub columns: Vec<String>,
    pub source: Box<ast::Query>,
    pub span: Span,
}

/// `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct CreateTable {
    pub name: ObjectName,
    pub if_not_exists: bool,
    pub temporary: bool,
    pub columns: Vec<ColumnSpec>,
    pub watermark: Option<WatermarkSpec>,
    pub primary_key: Option<Vec<String>>,
    pub comment: Option<String>,
    pub partition_by: Vec<String>,
    pub options: Vec<(String, String)>,
    /// `CREATE TABLE ... AS query`.
    pub as_query: Option<Box<ast::Query>>,
}

/// One entry of a `CREATE TABLE` column list.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: ColumnSpecKind,
    pub comment: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum ColumnSpecKind {
    /// `name TYPE [NOT NULL]`.
    Physical { data_type: SqlType, nullable: bool },
    /// `name AS expr`: computed from the other columns when read.
    Computed { expr: ast::Expr },
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`.
    Metadata {
        data_type: SqlType,
        key: Option<String>,
        is_virtual: bool,
    },
}

/// `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone)]
pub struct WatermarkSpec {
    pub column: String,
    pub expr: ast::Expr,
    pub span: Span,
}

/// `CREATE VIEW`.
#[derive(Debug, Clone)]
pub struct CreateView {
    pub name: ObjectName,
    pub if_not_exists: bool,
    pub temporary: bool,
    pub columns: Vec<String>,
    pub comment: Option<String>,
    pub query: Box<ast::Query>,
}

#[derive(Debug, Clone)]
pub enum AlterTableAction {
    RenameTo(ObjectName),
    Set(Vec<(String, String)>),
    Reset(Vec<String>),
}

#[derive(Debug, Clone)]
pub enum AlterViewAction {
    RenameTo(ObjectName),
    As(Box<ast::Query>),
}

/// The `SHOW` statements.
#[derive(Debug, Clone)]
pub enum Show {
    Catalogs,
    CurrentCatalog,
    Databases {
        catalog: Option<String>,
    },
    CurrentDatabase,
    Tables {
        from: Option<ObjectName>,
        like: Option<LikePattern>,
    },
    Views {
        from: Option<ObjectName>,
    },
    Functions {
        user_only: bool,
    },
    Columns {
        table: ObjectName,
        like: Option<LikePattern>,
    },
    CreateTable(ObjectName),
    CreateView(ObjectName),
    Jobs,
}

/// `[NOT] LIKE|ILIKE 'pattern'` of `SHOW TABLES` / `SHOW COLUMNS`.
#[derive(Debug, Clone)]
pub struct LikePattern {
    pub pattern: String,
    pub negated: bool,
    pub case_insensitive: bool,
}
