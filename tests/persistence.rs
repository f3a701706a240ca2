//! The persistent catalog across process restarts: one `weir -f` run creates filesystem tables in
//! all three formats and fills them; later runs (new processes, same data directory) join and
//! aggregate across them and see the definitions, views and databases created earlier.

use std::path::Path;
use std::process::Command;

fn weir(data_dir: &Path, script: &str, output: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("script.sql");
    std::fs::write(&file, script).expect("write script");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--output")
        .arg(output)
        .arg("-f")
        .arg(&file)
        .output()
        .expect("run weir");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tables_views_and_databases_survive_a_restart() {
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    let files = root.path().join("files");
    let f = files.display();
    let create = format!(
        "
        CREATE TABLE orders (id BIGINT, customer STRING, amount DOUBLE)
          WITH ('connector' = 'filesystem', 'path' = '{f}/orders', 'format' = 'csv');
        CREATE TABLE customers (name STRING, country STRING)
          WITH ('connector' = 'filesystem', 'path' = '{f}/customers', 'format' = 'json');
        CREATE DATABASE reports;
        CREATE TABLE reports.by_country (country STRING, orders BIGINT, total DOUBLE)
          PARTITIONED BY (country)
          WITH ('connector' = 'filesystem', 'path' = '{f}/by_country', 'format' = 'parquet');
        INSERT INTO orders VALUES (1, 'alice', 10.5), (2, 'bob', 20.0), (3, 'alice', 4.5), (4, 'carol', 1.0);
        INSERT INTO customers VALUES ('alice', 'NL'), ('bob', 'DE'), ('carol', 'NL');
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 5;
        "
    );
    let (ok, out, err) = weir(&data, &create, "csv");
    assert!(ok, "first run failed: {out}\n{err}");

    // A new process: the catalog comes back from disk; fill the parquet table from the others.
    let fill = "
        INSERT INTO reports.by_country
        SELECT c.country, COUNT(*), SUM(o.amount)
        FROM orders o JOIN customers c ON o.customer = c.name
        GROUP BY c.country;
    ";
    let (ok, out, err) = weir(&data, fill, "csv");
    assert!(ok, "second run failed: {out}\n{err}");

    // A third process reads everything back.
    let read = "
        SELECT country, orders, total FROM reports.by_country ORDER BY country;
        SELECT COUNT(*) AS n FROM big_orders;
        SHOW DATABASES;
    ";
    let (ok, out, err) = weir(&data, read, "csv");
    assert!(ok, "third run failed: {out}\n{err}");
    assert!(
        out.contains("country,orders,total\nDE,1,20.0\nNL,3,16.0\n"),
        "unexpected output:\n{out}"
    );
    assert!(out.contains("n\n2\n"), "view result missing:\n{out}");
    assert!(out.contains("reports"), "database missing:\n{out}");
    // The partitioned parquet table wrote one directory per country.
    assert!(files.join("by_country/country=NL").is_dir());
    assert!(files.join("by_country/country=DE").is_dir());
}

#[test]
fn a_corrupt_catalog_is_reported_not_replaced() {
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    let (ok, _, err) = weir(&data, "CREATE DATABASE keep_me;", "csv");
    assert!(ok, "{err}");
    let doc = data.join("catalog/catalog.json");
    std::fs::write(&doc, "{ torn").expect("corrupt the catalog");
    let (ok, _, err) = weir(&data, "SHOW DATABASES;", "csv");
    assert!(!ok, "a corrupt catalog must fail loudly");
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&doc).expect("catalog still there"),
        "{ torn"
    );
}
