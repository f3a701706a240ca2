//! Tests of the Flink SQL parser: script splitting, spans, errors, every statement form, and
//! Flink query syntax (window TVFs, temporal joins, Nexmark).

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SetExpr, TableFactor,
};

use super::*;
use crate::error::ErrorCode;
use crate::sql::statement::*;
use crate::types::SqlType;

fn one(sql: &str) -> Statement {
    let mut v = match parse_script(sql) {
        Ok(v) => v,
        Err(e) => panic!("{sql}\n=> {e}"),
    };
    assert_eq!(v.len(), 1, "{sql}");
    v.remove(0).statement
}

fn err(sql: &str) -> Error {
    match parse_script(sql) {
        Ok(v) => panic!(
            "expected an error for {sql}, got {:?}",
            v.iter().map(|s| &s.statement).collect::<Vec<_>>()
        ),
        Err(e) => e,
    }
}

fn at(e: &Error) -> (u64, u64) {
    let s = e.span.unwrap_or_else(|| panic!("no span: {e}"));
    (s.start.line, s.start.column)
}

fn query(sql: &str) -> ast::Query {
    match one(sql) {
        Statement::Query(q) => *q,
        other => panic!("not a query: {other:?}"),
    }
}

fn loc(line: u64, column: u64) -> Location {
    Location { line, column }
}

// ---------------------------------------------------------------- scripts, spans, errors

#[test]
fn script_splits_with_spans_and_text() {
    let sql = "-- leading comment\nSELECT 1;\n  SELECT ';' AS s -- trailing ; comment\n  FROM t ;\n\n;SELECT 3";
    let v = parse_script(sql).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].text, "SELECT 1");
    assert_eq!(v[0].span, Span::new(loc(2, 1), loc(2, 9)));
    assert_eq!(v[1].text, "SELECT ';' AS s -- trailing ; comment\n  FROM t");
    assert_eq!(v[1].span.start, loc(3, 3));
    assert_eq!(v[1].span.end, loc(4, 9));
    assert_eq!(v[2].text, "SELECT 3");
    assert_eq!(v[2].span.start, loc(6, 2));
}

#[test]
fn empty_and_comment_only_scripts() {
    assert!(parse_script("").unwrap().is_empty());
    assert!(parse_script(" ;; ; \n").unwrap().is_empty());
    assert!(
        parse_script("-- nothing here\n/* nor here */")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn unicode_text_slices() {
    let v = parse_script("SELECT 'héllo' AS `naïve`; SELECT 2").unwrap();
    assert_eq!(v[0].text, "SELECT 'héllo' AS `naïve`");
    assert_eq!(v[1].text, "SELECT 2");
}

#[test]
fn error_position_in_first_line() {
    let e = err("SELECT * FORM t");
    assert_eq!(e.code, ErrorCode::Syntax);
    assert_eq!(at(&e), (1, 10), "{e}");
    assert!(e.message.contains("found: FORM"), "{}", e.message);
    assert!(!e.message.contains("Line:"), "{}", e.message);

    let e = err("SELECT a FROM t WHERE (a > 1");
    assert!(e.message.starts_with("Expected: )"), "{}", e.message);
    assert!(e.message.contains("found: EOF"), "{}", e.message);
    assert_eq!(at(&e), (1, 29));

    let e = err("SELECT f(a FROM t");
    assert_eq!(e.message, "Expected: ), found: FROM");
    assert_eq!(at(&e), (1, 12));
    let span = e.span.unwrap();
    assert_eq!(span.end, loc(1, 16));
}

#[test]
fn error_position_in_third_line_of_script() {
    let e = err("SELECT 1;\nSELECT 2;\nSELECT (3 FROM t;");
    assert_eq!(at(&e).0, 3, "{e}");
    assert_eq!(at(&e), (3, 11));
    let e = err("CREATE TABLE t (a INT);\n\nINSERT INTO t SELEC 1;");
    assert_eq!(at(&e), (3, 15), "{e}");
}

#[test]
fn unterminated_string_is_a_positioned_error() {
    let e = err("SELECT 1;\nSELECT 'abc");
    assert_eq!(e.code, ErrorCode::Syntax);
    assert_eq!(at(&e).0, 2, "{e}");
}

#[test]
fn unsupported_statement_names_keyword() {
    let e = err("SELECT 1;\n  UPDATE t SET a = 1");
    assert!(e.message.contains("UPDATE"), "{}", e.message);
    assert_eq!(at(&e), (2, 3));
    let e = err("SELECT 1 2");
    assert!(e.message.contains("found: 2"), "{}", e.message);
}

#[test]
fn parse_expr_and_query_helpers() {
    let e = parse_expr("`dateTime` - INTERVAL '4' SECOND").unwrap();
    assert!(matches!(e, Expr::BinaryOp { .. }));
    let q = parse_query("SELECT a FROM `my tbl` WHERE b > 1").unwrap();
    assert!(q.to_string().contains("FROM `my tbl`"));
    let e = parse_expr("a +").unwrap_err();
    assert_eq!(e.code, ErrorCode::Syntax);
    assert!(e.span.is_some());
    assert!(parse_query("SELECT 1 garbage garbage").is_err());
}

// ---------------------------------------------------------------- queries

/// `IS [NOT] DISTINCT FROM` binds like a comparison: the `AND` / `OR` after its right operand
/// is not part of it (found by the TLP fuzzer: `WHERE p IS DISTINCT FROM TRUE AND q` dropped
/// `q`'s rows into the wrong side).
#[test]
fn is_distinct_from_binds_like_a_comparison() {
    for (sql, expected) in [
        (
            "a IS DISTINCT FROM TRUE AND b = 'x'",
            "a IS DISTINCT FROM true AND b = 'x'",
        ),
        (
            "a IS NOT DISTINCT FROM b OR c",
            "a IS NOT DISTINCT FROM b OR c",
        ),
        (
            "a IS DISTINCT FROM b + 1 AND c",
            "a IS DISTINCT FROM b + 1 AND c",
        ),
        ("NOT a IS DISTINCT FROM b", "NOT a IS DISTINCT FROM b"),
    ] {
        let e = parse_expr(sql).unwrap();
        assert_eq!(e.to_string(), expected, "{sql}");
        match (&e, sql) {
            (Expr::BinaryOp { left, .. }, _) if sql.contains(" AND ") || sql.contains(" OR ") => {
                assert!(
                    matches!(
                        **left,
                        Expr::IsDistinctFrom(..) | Expr::IsNotDistinctFrom(..)
                    ),
                    "{sql}: {e:?}"
                );
            }
            (Expr::UnaryOp { expr, .. }, _) => {
                assert!(matches!(**expr, Expr::IsDistinctFrom(..)), "{sql}: {e:?}");
            }
            _ => panic!("{sql}: unexpected shape {e:?}"),
        }
    }
    let Expr::IsDistinctFrom(_, right) = parse_expr("a IS DISTINCT FROM b + 1").unwrap() else {
        panic!("not IS DISTINCT FROM")
    };
    assert!(matches!(*right, Expr::BinaryOp { .. }));
}

#[test]
fn flink_query_forms_parse() {
    for sql in [
        "SELECT INTERVAL '10' SECOND, INTERVAL '1' MINUTE, INTERVAL '2' HOUR, INTERVAL '3' MINUTES",
        "SELECT CAST(x AS STRING), CAST(x AS TIMESTAMP(3)), CAST(x AS TIMESTAMP_LTZ(3)) FROM t",
        "SELECT CAST(x AS DECIMAL(10, 2)), TRY_CAST(y AS INT), CAST(z AS TIMESTAMP(3) WITH LOCAL TIME ZONE) FROM t",
        "SELECT CAST(m AS MAP<STRING, ARRAY<INT>>), CAST(r AS ROW<a INT, b STRING>) FROM t",
        "SELECT `select`, `a b`, `dateTime` FROM `my-db`.`t`",
        "SELECT PROCTIME(), CURRENT_TIMESTAMP, DATE_FORMAT(ts, 'yyyy-MM-dd') FROM t",
        "SELECT a, ROW_NUMBER() OVER (PARTITION BY a ORDER BY b DESC) AS rn FROM t",
        "SELECT COUNT(DISTINCT x) FILTER (WHERE y > 1) FROM t",
        "SELECT a || b, MAP['k', 1], ARRAY[1, 2], 'it''s' FROM t",
        "SELECT o.id, r.rate FROM orders AS o JOIN rates FOR SYSTEM_TIME AS OF o.proctime AS r ON o.cur = r.cur",
        "VALUES (1, 'a'), (2, 'b')",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "SELECT a FROM t GROUP BY a HAVING COUNT(*) > 1 ORDER BY a LIMIT 10",
        "SELECT $a1, a$b FROM t1",
    ] {
        one(sql);
    }
    // Identifiers keep their case and spelling.
    let q = query("SELECT MyCol, `Other Col` FROM MyTable");
    let SetExpr::Select(sel) = q.body.as_ref() else {
        panic!()
    };
    assert_eq!(sel.projection[0].to_string(), "MyCol");
    assert_eq!(sel.projection[1].to_string(), "`Other Col`");
}

#[test]
fn cast_types_are_flink_types() {
    let q = query(
        "SELECT CAST(x AS STRING), CAST(x AS TIMESTAMP_LTZ(3)), CAST(x AS ARRAY<INT NOT NULL>) FROM t",
    );
    let SetExpr::Select(sel) = q.body.as_ref() else {
        panic!()
    };
    let types: Vec<SqlType> = sel
        .projection
        .iter()
        .map(|item| match item {
            ast::SelectItem::UnnamedExpr(Expr::Cast { data_type, .. }) => {
                crate::sql::sql_type_from_ast(data_type).unwrap()
            }
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(types[0], SqlType::String);
    assert_eq!(types[1], SqlType::TimestampLtz { precision: 3 });
    assert_eq!(
        types[2],
        SqlType::Array {
            element: Box::new(SqlType::Int),
            element_nullable: true
        }
    );
    let q = query("SELECT MAP['k', 1, 'j', 2], ARRAY[1, 2] FROM t");
    let SetExpr::Select(sel) = q.body.as_ref() else {
        panic!()
    };
    assert_eq!(sel.projection[0].to_string(), "make_map('k', 1, 'j', 2)");
    assert!(err("SELECT MAP['k'] FROM t").message.contains("pairs"));
    // Non-Flink spellings still go through sqlparser's grammar.
    one("SELECT CAST(x AS TEXT) FROM t");
}

/// The `FROM TABLE(<fn>(...))` window function call of a query.
fn window_call(sql: &str) -> ast::Function {
    let q = query(sql);
    let SetExpr::Select(sel) = q.body.as_ref() else {
        panic!()
    };
    match &sel.from[0].relation {
        TableFactor::TableFunction {
            expr: Expr::Function(f),
            ..
        } => f.clone(),
        other => panic!("{other:?}"),
    }
}

fn args(f: &ast::Function) -> Vec<FunctionArg> {
    match &f.args {
        FunctionArguments::List(l) => l.args.clone(),
        _ => panic!("no args"),
    }
}

fn table_arg(arg: &FunctionArg) -> Vec<Expr> {
    let e = match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e,
        FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        } => e,
        other => panic!("{other}"),
    };
    match e {
        Expr::Function(f) if f.name.to_string() == "TABLE" => args(f)
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e.clone(),
                other => panic!("{other}"),
            })
            .collect(),
        other => panic!("not a TABLE argument: {other}"),
    }
}

#[test]
fn window_table_functions() {
    let f = window_call(
        "SELECT * FROM TABLE(TUMBLE(TABLE Bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))",
    );
    assert_eq!(f.name.to_string(), "TUMBLE");
    let a = args(&f);
    assert_eq!(a.len(), 3);
    assert_eq!(
        table_arg(&a[0]),
        vec![Expr::Identifier(ast::Ident::new("Bid"))]
    );

    let f = window_call(
        "SELECT * FROM TABLE(HOP(TABLE cat.db.bid, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND))",
    );
    let a = args(&f);
    assert_eq!(a.len(), 4);
    assert!(matches!(&table_arg(&a[0])[0], Expr::CompoundIdentifier(parts) if parts.len() == 3));

    let f = window_call(
        "SELECT * FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '2' MINUTE, INTERVAL '10' MINUTE))",
    );
    assert_eq!(args(&f).len(), 4);

    let f = window_call(
        "SELECT * FROM TABLE(SESSION(TABLE t PARTITION BY (k, j), DESCRIPTOR(ts), INTERVAL '5' MINUTE))",
    );
    let a = args(&f);
    assert_eq!(a.len(), 3, "{f}");
    let t = table_arg(&a[0]);
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].to_string(), "PARTITION_BY(k, j)");
    let f = window_call(
        "SELECT * FROM TABLE(SESSION(TABLE Bid PARTITION BY bidder, DESCRIPTOR(ts), INTERVAL '5' MINUTES))",
    );
    let a = args(&f);
    assert_eq!(a.len(), 3, "{f}");
    assert_eq!(table_arg(&a[0])[1].to_string(), "PARTITION_BY(bidder)");

    let f = window_call(
        "SELECT * FROM TABLE(TUMBLE(DATA => TABLE Bid, TIMECOL => DESCRIPTOR(dateTime), SIZE => INTERVAL '10' MINUTES)) AS w",
    );
    let a = args(&f);
    assert!(matches!(&a[0], FunctionArg::Named { name, .. } if name.value == "DATA"));
    assert_eq!(table_arg(&a[0]).len(), 1);
    // `TABLE` not followed by a name is not ours.
    assert!(parse_script("SELECT * FROM TABLE(x)").is_ok());
}

// ---------------------------------------------------------------- CREATE TABLE

fn create_table(sql: &str) -> CreateTable {
    match one(sql) {
        Statement::CreateTable(c) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn create_table_full() {
    let sql = "CREATE TEMPORARY TABLE IF NOT EXISTS cat.db.Orders (
        id BIGINT NOT NULL COMMENT 'the id',
        `user` STRING,
        price DECIMAL(10, 2),
        tags ARRAY<STRING>,
        ts TIMESTAMP(3),
        total AS price * 2 COMMENT 'computed',
        part BIGINT METADATA FROM 'partition' VIRTUAL,
        `offset` BIGINT METADATA VIRTUAL,
        headers MAP<STRING, BYTES> METADATA,
        WATERMARK FOR ts AS ts - INTERVAL '5' SECOND,
        CONSTRAINT pk PRIMARY KEY (id, `user`) NOT ENFORCED
    ) COMMENT 'orders' PARTITIONED BY (`user`) WITH ('connector' = 'filesystem', 'path' = '/tmp/it''s')";
    let c = create_table(sql);
    assert!(c.temporary && c.if_not_exists);
    assert_eq!(c.name.to_string(), "cat.db.Orders");
    assert_eq!(c.columns.len(), 9);
    assert_eq!(c.columns[0].name, "id");
    assert!(matches!(
        c.columns[0].kind,
        ColumnSpecKind::Physical {
            data_type: SqlType::BigInt,
            nullable: false
        }
    ));
    assert_eq!(c.columns[0].comment.as_deref(), Some("the id"));
    assert_eq!(c.columns[1].name, "user");
    assert!(matches!(
        c.columns[2].kind,
        ColumnSpecKind::Physical {
            data_type: SqlType::Decimal {
                precision: 10,
                scale: 2
            },
            nullable: true
        }
    ));
    match &c.columns[5].kind {
        ColumnSpecKind::Computed { expr } => assert_eq!(expr.to_string(), "price * 2"),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.columns[5].comment.as_deref(), Some("computed"));
    assert!(
        matches!(&c.columns[6].kind, ColumnSpecKind::Metadata { key: Some(k), is_virtual: true, .. } if k == "partition")
    );
    assert!(matches!(
        &c.columns[7].kind,
        ColumnSpecKind::Metadata {
            key: None,
            is_virtual: true,
            ..
        }
    ));
    assert!(matches!(
        &c.columns[8].kind,
        ColumnSpecKind::Metadata {
            key: None,
            is_virtual: false,
            data_type: SqlType::Map { .. }
        }
    ));
    let wm = c.watermark.unwrap();
    assert_eq!(wm.column, "ts");
    assert_eq!(wm.expr.to_string(), "ts - INTERVAL '5' SECOND");
    assert_eq!(wm.span.start.line, 11);
    assert_eq!(
        c.primary_key,
        Some(vec!["id".to_string(), "user".to_string()])
    );
    assert_eq!(c.comment.as_deref(), Some("orders"));
    assert_eq!(c.partition_by, vec!["user".to_string()]);
    assert_eq!(
        c.options,
        vec![
            ("connector".into(), "filesystem".into()),
            ("path".into(), "/tmp/it's".into())
        ]
    );
    assert!(c.as_query.is_none());
    assert_eq!(c.columns[0].span.start, loc(2, 9));
}

#[test]
fn create_table_column_primary_key_and_as_select() {
    let c = create_table("CREATE TABLE t (id INT PRIMARY KEY NOT ENFORCED, v STRING)");
    assert_eq!(c.primary_key, Some(vec!["id".to_string()]));
    let c = create_table("CREATE TABLE t2 WITH ('connector' = 'blackhole') AS SELECT a, b FROM t");
    assert!(c.columns.is_empty());
    assert_eq!(c.options.len(), 1);
    assert!(c.as_query.is_some());
    let c = create_table("CREATE TABLE t3 (a INT) WITH ('connector' = 'print') AS SELECT 1");
    assert!(c.as_query.is_some());
}

#[test]
fn create_table_errors() {
    let e = err("CREATE TABLE t (id INT, PRIMARY KEY (id))");
    assert!(e.message.contains("NOT ENFORCED"), "{}", e.message);
    let e = err("CREATE TABLE t (id INT PRIMARY KEY)");
    assert!(e.message.contains("NOT ENFORCED"), "{}", e.message);
    let e = err("CREATE TABLE t LIKE other");
    assert_eq!(e.code, ErrorCode::NotSupported);
    let e = err("CREATE TABLE t (a INT) LIKE other");
    assert_eq!(e.code, ErrorCode::NotSupported);
    let e = err("CREATE TABLE t (\n  a STRNG\n)");
    assert!(
        e.message.contains("STRNG") && e.message.contains("STRING"),
        "{}",
        e.message
    );
    assert_eq!(at(&e), (2, 5));
    let e = err("CREATE TABLE t (a DECIMAL(39, 1))");
    assert!(e.message.contains("38"), "{}", e.message);
    let e = err("CREATE TABLE t (a INT) WITH (connector = 'x')");
    assert!(e.message.contains("option key"), "{}", e.message);
    let e = err("CREATE TABLE t (a INT, WATERMARK FOR a AS a, WATERMARK FOR a AS a)");
    assert!(e.message.contains("WATERMARK"), "{}", e.message);
    let e =
        err("CREATE TABLE t (a INT, PRIMARY KEY (a) NOT ENFORCED, PRIMARY KEY (a) NOT ENFORCED)");
    assert!(e.message.contains("PRIMARY KEY"), "{}", e.message);
    let e = err("CREATE FUNCTION f AS com.x.F");
    assert_eq!(e.code, ErrorCode::Syntax);
    assert!(e.message.contains("a string literal"), "{}", e.message);
    let e = err("CREATE FUNCTION f AS 'x' LANGUAGE RUST");
    assert!(e.message.contains("JAVA, SCALA or PYTHON"), "{}", e.message);
    let e = err("CREATE TEMPORARY SYSTEM FUNCTION db.f AS 'x'");
    assert!(e.message.contains("simple name"), "{}", e.message);
    assert_eq!(
        err("CREATE SYSTEM FUNCTION f AS 'x'").code,
        ErrorCode::Syntax
    );
    assert!(
        err("CREATE INDEX i ON t (a)")
            .message
            .contains("Expected: TABLE, VIEW")
    );
}

#[test]
fn create_table_nested_types() {
    let c = create_table(
        "CREATE TABLE t (a ARRAY<ARRAY<INT>>, m MAP<STRING, ROW<x INT, y ARRAY<BIGINT>>>, r ROW(a INT NOT NULL, b STRING), s INT ARRAY)",
    );
    let types: Vec<String> = c
        .columns
        .iter()
        .map(|col| match &col.kind {
            ColumnSpecKind::Physical { data_type, .. } => data_type.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        types,
        vec![
            "ARRAY<ARRAY<INT>>",
            "MAP<STRING, ROW<`x` INT, `y` ARRAY<BIGINT>>>",
            "ROW<`a` INT NOT NULL, `b` STRING>",
            "ARRAY<INT>"
        ]
    );
}

// ---------------------------------------------------------------- other DDL

#[test]
fn create_view_database_catalog() {
    match one("CREATE TEMPORARY VIEW IF NOT EXISTS v (a, b) COMMENT 'c' AS SELECT 1, 2") {
        Statement::CreateView(v) => {
            assert!(v.temporary && v.if_not_exists);
            assert_eq!(v.columns, vec!["a", "b"]);
            assert_eq!(v.comment.as_deref(), Some("c"));
            assert_eq!(v.query.to_string(), "SELECT 1, 2");
        }
        other => panic!("{other:?}"),
    }
    match one("CREATE VIEW v AS SELECT * FROM t") {
        Statement::CreateView(v) => assert!(!v.temporary && v.columns.is_empty()),
        other => panic!("{other:?}"),
    }
    match one("CREATE DATABASE IF NOT EXISTS c.db COMMENT 'x' WITH ('k' = 'v')") {
        Statement::CreateDatabase {
            name,
            if_not_exists,
            comment,
            properties,
        } => {
            assert_eq!(name.to_string(), "c.db");
            assert!(if_not_exists);
            assert_eq!(comment.as_deref(), Some("x"));
            assert_eq!(properties, vec![("k".to_string(), "v".to_string())]);
        }
        other => panic!("{other:?}"),
    }
    match one("CREATE CATALOG IF NOT EXISTS my_cat WITH ('type' = 'generic_in_memory')") {
        Statement::CreateCatalog {
            name,
            if_not_exists,
            options,
        } => {
            assert_eq!(name, "my_cat");
            assert!(if_not_exists);
            assert_eq!(options[0].1, "generic_in_memory");
        }
        other => panic!("{other:?}"),
    }
    assert!(err("CREATE CATALOG c").message.contains("WITH"));
}

#[test]
fn drop_statements() {
    let cases = [
        ("DROP TABLE t", ObjectKind::Table, false, false, false),
        (
            "DROP TEMPORARY TABLE IF EXISTS c.d.t",
            ObjectKind::Table,
            true,
            true,
            false,
        ),
        (
            "DROP VIEW IF EXISTS v",
            ObjectKind::View,
            true,
            false,
            false,
        ),
        (
            "DROP TEMPORARY VIEW v",
            ObjectKind::View,
            false,
            true,
            false,
        ),
        (
            "DROP DATABASE IF EXISTS c.db CASCADE",
            ObjectKind::Database,
            true,
            false,
            true,
        ),
        (
            "DROP DATABASE db RESTRICT",
            ObjectKind::Database,
            false,
            false,
            false,
        ),
        (
            "DROP CATALOG IF EXISTS c",
            ObjectKind::Catalog,
            true,
            false,
            false,
        ),
    ];
    for (sql, k, ie, tmp, casc) in cases {
        match one(sql) {
            Statement::Drop {
                kind,
                if_exists,
                temporary,
                cascade,
                ..
            } => {
                assert_eq!(
                    (kind, if_exists, temporary, cascade),
                    (k, ie, tmp, casc),
                    "{sql}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    for (sql, temp, sys, ie) in [
        ("DROP FUNCTION f", false, false, false),
        ("DROP TEMPORARY FUNCTION IF EXISTS db.f", true, false, true),
        ("DROP TEMPORARY SYSTEM FUNCTION f", true, true, false),
    ] {
        match one(sql) {
            Statement::DropFunction {
                temporary,
                system,
                if_exists,
                ..
            } => assert_eq!((temporary, system, if_exists), (temp, sys, ie), "{sql}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        err("DROP TEMPORARY SYSTEM FUNCTION a.b")
            .message
            .contains("simple name")
    );
    assert_eq!(err("DROP INDEX i").code, ErrorCode::Syntax);
}

#[test]
fn alter_statements() {
    match one("ALTER TABLE IF EXISTS t RENAME TO t2") {
        Statement::AlterTable {
            name,
            if_exists: true,
            action: AlterTableAction::RenameTo(n),
        } => {
            assert_eq!((name.to_string(), n.to_string()), ("t".into(), "t2".into()));
        }
        other => panic!("{other:?}"),
    }
    match one("ALTER TABLE t SET ('a' = '1', 'b' = '2')") {
        Statement::AlterTable {
            action: AlterTableAction::Set(kv),
            if_exists: false,
            ..
        } => assert_eq!(kv.len(), 2),
        other => panic!("{other:?}"),
    }
    match one("ALTER TABLE t RESET ('a', 'b')") {
        Statement::AlterTable {
            action: AlterTableAction::Reset(k),
            ..
        } => assert_eq!(k, vec!["a", "b"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        one("ALTER VIEW v RENAME TO w"),
        Statement::AlterView {
            action: AlterViewAction::RenameTo(_),
            ..
        }
    ));
    assert!(matches!(
        one("ALTER VIEW v AS SELECT 1"),
        Statement::AlterView {
            action: AlterViewAction::As(_),
            ..
        }
    ));
    assert_eq!(
        err("ALTER TABLE t ADD (c INT)").code,
        ErrorCode::NotSupported
    );
    assert_eq!(
        err("ALTER DATABASE d SET ('a' = 'b')").code,
        ErrorCode::NotSupported
    );
}

// ---------------------------------------------------------------- USE, SHOW, DESCRIBE, EXPLAIN, SET

#[test]
fn use_statements() {
    assert!(matches!(one("USE CATALOG my_cat"), Statement::UseCatalog(c) if c == "my_cat"));
    assert!(matches!(one("USE db1"), Statement::UseDatabase(n) if n.to_string() == "db1"));
    assert!(matches!(one("USE c.db1"), Statement::UseDatabase(n) if n.to_string() == "c.db1"));
}

#[test]
fn show_statements() {
    let show = |sql: &str| match one(sql) {
        Statement::Show(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(matches!(show("SHOW CATALOGS"), Show::Catalogs));
    assert!(matches!(show("SHOW CURRENT CATALOG"), Show::CurrentCatalog));
    assert!(matches!(
        show("SHOW DATABASES"),
        Show::Databases { catalog: None }
    ));
    assert!(
        matches!(show("SHOW DATABASES IN c"), Show::Databases { catalog: Some(c) } if c == "c")
    );
    assert!(matches!(
        show("SHOW CURRENT DATABASE"),
        Show::CurrentDatabase
    ));
    assert!(matches!(
        show("SHOW TABLES"),
        Show::Tables {
            from: None,
            like: None
        }
    ));
    match show("SHOW TABLES FROM c.db NOT LIKE 'x%'") {
        Show::Tables {
            from: Some(f),
            like: Some(l),
        } => {
            assert_eq!(f.to_string(), "c.db");
            assert!(l.negated && !l.case_insensitive);
            assert_eq!(l.pattern, "x%");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        show("SHOW TABLES ILIKE 'A%'"),
        Show::Tables {
            like: Some(LikePattern {
                case_insensitive: true,
                negated: false,
                ..
            }),
            ..
        }
    ));
    assert!(matches!(
        show("SHOW VIEWS IN db"),
        Show::Views { from: Some(_) }
    ));
    assert!(matches!(
        show("SHOW FUNCTIONS"),
        Show::Functions { user_only: false }
    ));
    assert!(matches!(
        show("SHOW USER FUNCTIONS"),
        Show::Functions { user_only: true }
    ));
    assert!(matches!(
        show("SHOW COLUMNS FROM t LIKE '%id'"),
        Show::Columns { like: Some(_), .. }
    ));
    assert!(matches!(
        show("SHOW COLUMNS IN c.d.t"),
        Show::Columns { like: None, .. }
    ));
    assert!(matches!(show("SHOW CREATE TABLE t"), Show::CreateTable(_)));
    assert!(matches!(show("SHOW CREATE VIEW v"), Show::CreateView(_)));
    assert!(matches!(show("SHOW JOBS"), Show::Jobs));
    let e = err("SHOW PARTITIONS t");
    assert!(e.message.contains("SHOW CATALOGS"), "{}", e.message);
    assert_eq!(at(&e), (1, 6));
}

#[test]
fn describe_explain() {
    assert!(matches!(one("DESCRIBE t"), Statement::Describe { name } if name.to_string() == "t"));
    assert!(
        matches!(one("DESC EXTENDED c.d.t"), Statement::Describe { name } if name.to_string() == "c.d.t")
    );
    match one("EXPLAIN PLAN FOR SELECT 1") {
        Statement::Explain {
            details,
            analyze: false,
            statement,
        } => {
            assert!(details.is_empty());
            assert!(matches!(*statement, Statement::Query(_)));
        }
        other => panic!("{other:?}"),
    }
    match one("EXPLAIN estimated_cost, CHANGELOG_MODE INSERT INTO t SELECT 1") {
        Statement::Explain {
            details, statement, ..
        } => {
            assert_eq!(details, vec!["ESTIMATED_COST", "CHANGELOG_MODE"]);
            assert!(matches!(*statement, Statement::Insert(_)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        one("EXPLAIN ANALYZE SELECT 1"),
        Statement::Explain { analyze: true, .. }
    ));
    assert!(matches!(
        one("EXPLAIN EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; INSERT INTO b SELECT 2; END"),
        Statement::Explain { statement, .. } if matches!(*statement, Statement::StatementSet(ref v) if v.len() == 2)
    ));
    assert!(err("EXPLAIN DROP TABLE t").message.contains("EXPLAIN"));
}

#[test]
fn set_and_reset() {
    assert!(matches!(one("SET"), Statement::Set(None)));
    assert!(
        matches!(one("SET 'table.dml-sync' = 'true'"), Statement::Set(Some((k, v))) if k == "table.dml-sync" && v == "true")
    );
    assert!(matches!(
        one("SET execution.runtime-mode = batch"),
        Statement::Set(Some((k, v))) if k == "execution.runtime-mode" && v == "batch"
    ));
    assert!(matches!(one("SET 'a.b' = 10"), Statement::Set(Some((_, v))) if v == "10"));
    assert!(matches!(one("RESET"), Statement::Reset(None)));
    assert!(
        matches!(one("RESET 'table.dml-sync'"), Statement::Reset(Some(k)) if k == "table.dml-sync")
    );
    assert!(
        matches!(one("RESET table.local-time-zone"), Statement::Reset(Some(k)) if k == "table.local-time-zone")
    );
    assert!(err("SET 'a'").message.contains("Expected: ="));
    assert!(err("SET 'a' =").message.contains("value"));
}

// ---------------------------------------------------------------- INSERT and statement sets

fn insert(sql: &str) -> Insert {
    match one(sql) {
        Statement::Insert(i) => i,
        other => panic!("{other:?}"),
    }
}

#[test]
fn insert_forms() {
    let i = insert("INSERT INTO c.d.t SELECT * FROM s");
    assert_eq!(i.table.to_string(), "c.d.t");
    assert!(!i.overwrite && i.columns.is_empty() && i.partition.is_empty());
    assert_eq!(i.span, Span::new(loc(1, 1), loc(1, 34)));

    let i = insert(
        "INSERT OVERWRITE TABLE t PARTITION (dt = '2024-01-01', h = 3) (a, b) VALUES (1, 'x'), (2, 'y')",
    );
    assert!(i.overwrite);
    assert_eq!(i.partition.len(), 2);
    assert_eq!(i.partition[0].0, "dt");
    assert_eq!(i.partition[0].1.to_string(), "'2024-01-01'");
    assert_eq!(i.columns, vec!["a", "b"]);
    assert!(matches!(i.source.body.as_ref(), SetExpr::Values(_)));

    let i = insert("INSERT INTO t (SELECT 1)");
    assert!(i.columns.is_empty());
    let i = insert("INSERT INTO t (a) (SELECT 1)");
    assert_eq!(i.columns, vec!["a"]);
    assert!(matches!(
        one("EXECUTE INSERT INTO t SELECT 1"),
        Statement::Insert(_)
    ));
    assert!(matches!(one("EXECUTE SELECT 1"), Statement::Query(_)));
}

#[test]
fn statement_sets() {
    let sql = "SELECT 0;\nEXECUTE STATEMENT SET\nBEGIN\n  INSERT INTO a SELECT CASE WHEN x THEN 1 END FROM t;\n  INSERT INTO b SELECT 2;\nEND;\nSELECT 9";
    let v = parse_script(sql).unwrap();
    assert_eq!(v.len(), 3);
    match &v[1].statement {
        Statement::StatementSet(ins) => {
            assert_eq!(ins.len(), 2);
            assert_eq!(ins[0].table.to_string(), "a");
            assert_eq!(ins[1].span.start, loc(5, 3));
        }
        other => panic!("{other:?}"),
    }
    assert!(v[1].text.starts_with("EXECUTE STATEMENT SET") && v[1].text.ends_with("END"));
    assert_eq!(v[1].span, Span::new(loc(2, 1), loc(6, 4)));

    let sql = "BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;\nINSERT INTO b SELECT 2;\nEND;";
    let v = parse_script(sql).unwrap();
    assert_eq!(v.len(), 1);
    assert!(matches!(&v[0].statement, Statement::StatementSet(ins) if ins.len() == 2));
    // The last INSERT may go without `;`.
    assert!(
        matches!(one("EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1 END"), Statement::StatementSet(v) if v.len() == 1)
    );

    let e = err("EXECUTE STATEMENT SET BEGIN\nINSERT INTO a SELECT 1;\nSELECT 2;\nEND");
    assert!(e.message.contains("Only INSERT"), "{}", e.message);
    assert_eq!(at(&e), (3, 1));
    let e = err("BEGIN STATEMENT SET; INSERT INTO a SELECT 1;");
    assert!(e.message.contains("END"), "{}", e.message);
}

// ---------------------------------------------------------------- Nexmark

fn nexmark_dir() -> Option<std::path::PathBuf> {
    let dir = std::path::PathBuf::from("/work/shared/reference/nexmark");
    dir.is_dir().then_some(dir)
}

/// Replaces `${NAME}` placeholders: the table placeholder by a table name, others by a number.
fn fill_placeholders(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else { break };
        let name = &rest[i + 2..i + j];
        out.push_str(if name.ends_with("TABLE") {
            "datagen"
        } else if name.ends_with("DIR") || name.ends_with("HOME") || name.ends_with("TIME") {
            "tmp"
        } else {
            "1000"
        });
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn nexmark_queries_parse() {
    let Some(dir) = nexmark_dir() else {
        eprintln!("nexmark reference files not found; skipping");
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "{files:?}");
    let mut inserts = 0;
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let sql = fill_placeholders(&std::fs::read_to_string(&path).unwrap());
        let stmts = match parse_script(&sql) {
            Ok(s) => s,
            Err(e) => panic!("{name}: {e}"),
        };
        assert!(!stmts.is_empty(), "{name}");
        for s in &stmts {
            match &s.statement {
                Statement::Insert(i) => {
                    inserts += 1;
                    assert!(s.text.starts_with("INSERT INTO"), "{name}");
                    assert_eq!(i.span, s.span, "{name}");
                }
                Statement::CreateTable(c)
                    if name.starts_with('q') && c.name.to_string().starts_with("nexmark_q") =>
                {
                    assert!(!c.options.is_empty(), "{name}");
                }
                Statement::CreateTable(_) | Statement::CreateView(_) => {}
                Statement::CreateFunction(f) if name == "q14.sql" => {
                    assert_eq!(f.class, "com.github.nexmark.flink.udf.CountChar");
                }
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
    }
    assert!(inserts >= 24, "{inserts}");
}

#[test]
fn create_function_forms() {
    let sql = "CREATE TEMPORARY FUNCTION IF NOT EXISTS cat.db.count_char\n  AS 'com.github.nexmark.flink.udf.CountChar' LANGUAGE java";
    let Statement::CreateFunction(f) = one(sql) else {
        panic!("{sql}")
    };
    assert_eq!(f.name.to_string(), "cat.db.count_char");
    assert_eq!(f.class, "com.github.nexmark.flink.udf.CountChar");
    assert_eq!(f.language.as_deref(), Some("JAVA"));
    assert!(f.temporary && !f.system && f.if_not_exists);
    let span = f.class_span.unwrap();
    assert_eq!((span.start.line, span.start.column), (2, 6));
    let Statement::CreateFunction(f) = one("CREATE TEMPORARY SYSTEM FUNCTION f AS 'c.F'") else {
        panic!()
    };
    assert!(f.temporary && f.system && !f.if_not_exists && f.language.is_none());
    let Statement::CreateFunction(f) = one("CREATE FUNCTION f AS 'c.F'") else {
        panic!()
    };
    assert!(!f.temporary && !f.system);
}

#[test]
fn nexmark_datagen_table_shape() {
    let Some(dir) = nexmark_dir() else { return };
    let sql = fill_placeholders(&std::fs::read_to_string(dir.join("ddl_gen.sql")).unwrap());
    let c = create_table(&sql);
    assert_eq!(c.name.to_string(), "datagen");
    assert_eq!(c.columns.len(), 5);
    assert!(
        matches!(&c.columns[1].kind, ColumnSpecKind::Physical { data_type: SqlType::Row { fields }, .. } if fields.len() == 8)
    );
    assert!(matches!(
        &c.columns[4].kind,
        ColumnSpecKind::Computed { .. }
    ));
    assert_eq!(c.columns[4].name, "dateTime");
    assert_eq!(c.watermark.as_ref().unwrap().column, "dateTime");
    assert_eq!(
        c.options[0],
        ("connector".to_string(), "nexmark".to_string())
    );
}

#[test]
fn temporal_join_keeps_system_time() {
    let q = query(
        "SELECT * FROM orders AS o JOIN rates FOR SYSTEM_TIME AS OF o.proctime AS r ON o.c = r.c",
    );
    let SetExpr::Select(sel) = q.body.as_ref() else {
        panic!()
    };
    match &sel.from[0].joins[0].relation {
        TableFactor::Table {
            name,
            version: Some(ast::TableVersion::ForSystemTimeAsOf(e)),
            alias,
            ..
        } => {
            assert_eq!(name.to_string(), "rates");
            assert_eq!(e.to_string(), "o.proctime");
            assert_eq!(alias.as_ref().map(|a| a.name.value.as_str()), Some("r"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stop_job() {
    assert!(matches!(
        one("STOP JOB 'abc123'"),
        Statement::StopJob { id, savepoint: false, drain: false } if id == "abc123"
    ));
    assert!(matches!(
        one("stop job 'x' with savepoint with drain"),
        Statement::StopJob {
            savepoint: true,
            drain: true,
            ..
        }
    ));
    let e = err("STOP JOB abc");
    assert!(e.message.contains("job id"), "{}", e.message);
    let e = err("STOP JOB 'x' WITH CHECKPOINT");
    assert!(e.message.contains("SAVEPOINT or DRAIN"), "{}", e.message);
}

// ---------------------------------------------------------------- OPTIONS hints

/// The (name, alias) of every table reference in a query's FROM clauses, in order.
fn tables(q: &ast::Query) -> Vec<(String, Option<String>)> {
    use std::ops::ControlFlow;
    let mut out = Vec::new();
    struct V<'a>(&'a mut Vec<(String, Option<String>)>);
    impl ast::Visitor for V<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, alias, .. } = tf {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
                    .collect();
                self.0.push((
                    parts.join("."),
                    alias.as_ref().map(|a| a.name.value.clone()),
                ));
            }
            ControlFlow::Continue(())
        }
    }
    let _ = ast::Visit::visit(q, &mut V(&mut out));
    out
}

fn hinted(name: &str, options: &[(&str, &str)]) -> String {
    let map = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    hints::encode(name, &map)
}

#[test]
fn options_hint_without_alias_aliases_the_table_by_its_name() {
    let q = query(
        "SELECT orders.id FROM orders /*+ OPTIONS('scan.watermark.idle-timeout'='1 s') */ WHERE id > 1",
    );
    assert_eq!(
        tables(&q),
        vec![(
            hinted("orders", &[("scan.watermark.idle-timeout", "1 s")]),
            Some("orders".to_string())
        )]
    );
    // The WHERE clause is still parsed as one.
    let SetExpr::Select(select) = q.body.as_ref() else {
        panic!("not a select")
    };
    assert!(select.selection.is_some());
}

#[test]
fn options_hint_keeps_an_explicit_or_bare_alias() {
    for sql in [
        "SELECT o.id FROM db.orders /*+ OPTIONS('path'='/data/other') */ AS o",
        "SELECT o.id FROM db.orders /*+ OPTIONS('path'='/data/other') */ o",
    ] {
        let q = query(sql);
        let name = format!("db.{}", hinted("orders", &[("path", "/data/other")]));
        assert_eq!(tables(&q), vec![(name, Some("o".to_string()))], "{sql}");
    }
}

#[test]
fn options_hints_apply_to_the_reference_they_follow_only() {
    let q = query(
        "SELECT * FROM t /*+ OPTIONS('a'='1', b = '2') */ JOIN t ON TRUE \
         JOIN (SELECT * FROM u /*+ OPTIONS('c'='it''s') */ /*+ OPTIONS('d'='4') */) s ON TRUE",
    );
    assert_eq!(
        tables(&q),
        vec![
            (
                hinted("t", &[("a", "1"), ("b", "2")]),
                Some("t".to_string())
            ),
            ("t".to_string(), None),
            (
                hinted("u", &[("c", "it's"), ("d", "4")]),
                Some("u".to_string())
            ),
        ]
    );
}

#[test]
fn options_hint_on_an_insert_target() {
    let Statement::Insert(insert) = one(
        "INSERT INTO sink /*+ OPTIONS('sink.parallelism'='1') */ SELECT * FROM src /*+ OPTIONS('x'='y') */",
    ) else {
        panic!("not an insert")
    };
    assert_eq!(
        insert.table.to_string(),
        format!("`{}`", hinted("sink", &[("sink.parallelism", "1")]))
    );
    assert_eq!(
        tables(&insert.source),
        vec![(hinted("src", &[("x", "y")]), Some("src".to_string()))]
    );
}

#[test]
fn other_hints_are_comments() {
    let q = query("SELECT /*+ BROADCAST(t) */ * FROM t /*+ LOOKUP('table'='t') */ WHERE x = 1");
    assert_eq!(tables(&q), vec![("t".to_string(), None)]);
}

#[test]
fn options_hint_round_trips_through_view_text() {
    let q = query("SELECT o.id FROM orders /*+ OPTIONS('path'='/x') */ o");
    let text = crate::planner::temporal::query_text(&q);
    assert_eq!(
        text,
        "SELECT o.id FROM `orders` /*+ OPTIONS('path'='/x') */ o"
    );
    assert_eq!(tables(&parse_query(&text).unwrap()), tables(&q));
}

#[test]
fn malformed_options_hints_are_syntax_errors_at_the_hint() {
    let e = err("SELECT *\nFROM t /*+ OPTIONS(path='/x', 'k') */");
    assert_eq!(e.code, ErrorCode::Syntax);
    assert_eq!(at(&e), (2, 34));
    assert!(e.message.contains("expected = after the key"), "{e}");
    let e = err("SELECT * FROM t /*+ OPTIONS('k'=v) */");
    assert_eq!(at(&e), (1, 33));
    assert!(e.message.contains("expected a quoted value for 'k'"), "{e}");
    let e = err("SELECT * FROM t /*+ OPTIONS('k'='v' */");
    assert!(e.message.contains("expected , or )"), "{e}");
    let e = err("SELECT * FROM t /*+ OPTIONS() */");
    assert!(e.message.contains("expected a key"), "{e}");
    let e = err("SELECT * FROM t /*+ OPTIONS('k'='v') x */");
    assert!(e.message.contains("malformed hint list"), "{e}");
    // Not after a table name.
    let e = err("SELECT 1;\nSELECT /*+ OPTIONS('k'='v') */ 1");
    assert_eq!(at(&e), (2, 8));
    assert!(e.message.contains("must follow a table name"), "{e}");
    let e = err("SELECT * FROM t WHERE x = y /*+ OPTIONS('k'='v') */");
    assert!(e.message.contains("must follow a table name"), "{e}");
}

#[test]
fn errors_whose_message_has_no_position_point_where_the_parser_stopped() {
    // Found by tests/mutated_sql.rs: sqlparser's message for this one names no position.
    let e = err("SELECT 1 FROM a RIGHT b ON a.x = b.x");
    assert_eq!(e.code, ErrorCode::Syntax);
    assert!(e.message.contains("after RIGHT"), "{}", e.message);
    assert_eq!(at(&e), (1, 23), "{e}");
}
