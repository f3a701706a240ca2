"""Weir's Flight SQL endpoint driven by the real ADBC Flight SQL driver (adbc-driver-flightsql):
authentication, metadata, queries, DDL/DML, prepared statements, errors, per-session SET state,
and 16 concurrent clients."""

import os
import threading

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
from adbc_driver_manager import AdbcStatusCode

from flight_common import PASSWORD, SCRATCH, URI, USER, Runner, check, raises

Error = adbc_driver_manager.dbapi.Error


def connect(user=USER, password=PASSWORD):
    kwargs = {}
    if user is not None:
        kwargs["username"] = user
        kwargs["password"] = password
    root = os.environ.get("WEIR_TLS_ROOT")
    if root:
        with open(root) as f:
            kwargs["adbc.flight.sql.client_option.tls_root_certs"] = f.read()
    return flight_sql.connect(URI, db_kwargs=kwargs)


def status_of(err):
    return getattr(err, "status_code", None)


def rows(cur, sql, params=None):
    cur.execute(sql, params)
    return cur.fetchall()


def good_credentials():
    with connect() as conn, conn.cursor() as cur:
        check(rows(cur, "SELECT 1 + 1 AS two") == [(2,)], "SELECT 1 + 1")


def bad_password():
    def go():
        with connect(password="wrong-password") as conn, conn.cursor() as cur:
            rows(cur, "SELECT 1")

    err = raises(Error, go)
    check(status_of(err) == AdbcStatusCode.UNAUTHENTICATED, f"status of {err!r}")
    check("wrong-password" not in str(err), "the password leaks into the error")


def missing_credentials():
    def go():
        with connect(user=None) as conn, conn.cursor() as cur:
            rows(cur, "SELECT 1")

    err = raises(Error, go)
    check(status_of(err) == AdbcStatusCode.UNAUTHENTICATED, f"status of {err!r}")


def setup_tables(cur):
    out = os.path.join(SCRATCH, "adbc_out")
    # A filesystem table's schema is read by planning a scan, which needs its directory.
    os.makedirs(out, exist_ok=True)
    cur.execute("CREATE DATABASE IF NOT EXISTS adbc_db")
    cur.execute(
        "CREATE TABLE IF NOT EXISTS adbc_db.items (id INT, name STRING, PRIMARY KEY (id) NOT ENFORCED) "
        f"WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv')"
    )
    cur.execute("CREATE VIEW IF NOT EXISTS adbc_db.item_names AS SELECT name FROM adbc_db.items")


def metadata():
    with connect() as conn, conn.cursor() as cur:
        setup_tables(cur)
        info = conn.adbc_get_info()
        check(info.get("vendor_name") == "Weir", f"vendor_name in {info}")
        check(info.get("vendor_version"), f"vendor_version in {info}")
        types = conn.adbc_get_table_types()
        check(sorted(types) == ["TABLE", "VIEW"], f"table types {types}")
        objects = conn.adbc_get_objects(depth="all", db_schema_filter="adbc_db").read_all().to_pylist()
        catalogs = [c["catalog_name"] for c in objects]
        check("default_catalog" in catalogs, f"catalogs {catalogs}")
        tables = {}
        for c in objects:
            for s in c["catalog_db_schemas"] or []:
                for t in s["db_schema_tables"] or []:
                    tables[(s["db_schema_name"], t["table_name"])] = t
        check(("adbc_db", "items") in tables, f"tables {list(tables)}")
        check(tables[("adbc_db", "items")]["table_type"] == "TABLE", "items is a TABLE")
        check(tables[("adbc_db", "item_names")]["table_type"] == "VIEW", "item_names is a VIEW")
        columns = [col["column_name"] for col in tables[("adbc_db", "items")]["table_columns"]]
        check(columns == ["id", "name"], f"columns {columns}")
        # Table name patterns and table types filter.
        only = conn.adbc_get_objects(
            depth="tables", db_schema_filter="adbc_db", table_name_filter="item_%", table_types_filter=["VIEW"]
        ).read_all().to_pylist()
        names = [
            t["table_name"]
            for c in only
            for s in c["catalog_db_schemas"] or []
            for t in s["db_schema_tables"] or []
        ]
        check(names == ["item_names"], f"filtered tables {names}")
        schema = conn.adbc_get_table_schema("items", catalog_filter="default_catalog", db_schema_filter="adbc_db")
        check(schema.names == ["id", "name"], f"schema {schema}")


def query_and_types():
    with connect() as conn, conn.cursor() as cur:
        result = rows(cur, "SELECT CAST(7 AS BIGINT) AS a, 'x' AS b, CAST(1.5 AS DOUBLE) AS c, TRUE AS d")
        check(result == [(7, "x", 1.5, True)], f"result {result}")
        cur.execute("SELECT 1 AS one")
        table = cur.fetch_arrow_table()
        check(table.column_names == ["one"], f"columns {table.column_names}")


def ddl_and_dml():
    with connect() as conn, conn.cursor() as cur:
        setup_tables(cur)
        stmt = cur.adbc_statement
        stmt.set_sql_query(
            "CREATE TABLE IF NOT EXISTS adbc_db.counted (id INT, v STRING) "
            f"WITH ('connector' = 'filesystem', 'path' = '{os.path.join(SCRATCH, 'counted')}', 'format' = 'csv')"
        )
        check(stmt.execute_update() == 0, "DDL updates no rows")
        stmt.set_sql_query("INSERT INTO adbc_db.counted VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        n = stmt.execute_update()
        check(n == 3, f"INSERT wrote {n} rows")
        check(rows(cur, "SELECT COUNT(*) FROM adbc_db.counted") == [(3,)], "three rows read back")
        # A query sent as an update is refused clearly, and the connection stays usable.
        stmt.set_sql_query("SELECT 1")
        err = raises(Error, stmt.execute_update)
        check(status_of(err) == AdbcStatusCode.INVALID_ARGUMENT, f"status of {err!r}")
        check(rows(cur, "SELECT 5") == [(5,)], "usable after the error")


def prepared_statements():
    with connect() as conn, conn.cursor() as cur:
        setup_tables(cur)
        check(rows(cur, "SELECT ? + 1 AS x, ? AS s", (41, "it's")) == [(42, "it's")], "first binding")
        # Re-execution with other parameters.
        check(rows(cur, "SELECT ? + 1 AS x, ? AS s", (1, "b")) == [(2, "b")], "second binding")
        check(rows(cur, "SELECT ? IS NULL", (None,)) == [(True,)], "NULL parameter")
        cur.executemany("INSERT INTO adbc_db.items VALUES (?, ?)", [(10, "ten"), (11, "eleven")])
        got = rows(cur, "SELECT name FROM adbc_db.items WHERE id >= ? ORDER BY id", (10,))
        check(got == [("ten",), ("eleven",)], f"inserted with parameters: {got}")
        # Explicit prepare, then execute twice.
        schema = cur.adbc_prepare("SELECT ? * 2, '?'")
        check(schema is not None and len(schema) == 1, f"parameter schema {schema}")
        # A wrong number of parameters is an error, not a crash.
        err = raises(Error, lambda: rows(cur, "SELECT ? + ?", (1,)))
        check(status_of(err) == AdbcStatusCode.INVALID_ARGUMENT, f"status of {err!r}")
        check(rows(cur, "SELECT 3") == [(3,)], "usable after the error")


def bad_sql_then_good_query():
    with connect() as conn, conn.cursor() as cur:
        err = raises(Error, lambda: rows(cur, "SELECT (1 +\n 2 FROM t"))
        check(status_of(err) == AdbcStatusCode.INVALID_ARGUMENT, f"status of {err!r}")
        check("line 2, column" in str(err), f"position in {err}")
        check(rows(cur, "SELECT 'still here'") == [("still here",)], "good query after bad SQL")
        err = raises(Error, lambda: rows(cur, "SELECT * FROM no_such_table"))
        check(status_of(err) == AdbcStatusCode.NOT_FOUND, f"status of {err!r}")
        check("no_such_table" in str(err), f"name in {err}")
        check(rows(cur, "SELECT 2") == [(2,)], "good query after NOT_FOUND")


def set_is_per_session():
    with connect() as a, connect() as b, a.cursor() as ca, b.cursor() as cb:
        ca.execute("SET 'table.exec.weir-test' = 'on'")
        ca.fetchall()
        seen_a = dict(rows(ca, "SET"))
        seen_b = dict(rows(cb, "SET"))
        check(seen_a.get("table.exec.weir-test") == "on", f"A sees its SET: {seen_a}")
        check("table.exec.weir-test" not in seen_b, f"B does not: {seen_b}")


def concurrent_clients():
    errors = []

    def worker(i):
        try:
            with connect() as conn, conn.cursor() as cur:
                for j in range(10):
                    got = rows(cur, f"SELECT {i} * 100 + {j} AS v")
                    if got != [(i * 100 + j,)]:
                        errors.append(f"client {i}: {got}")
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, f"errors: {errors}")


def main():
    r = Runner()
    r.run("good credentials", good_credentials)
    r.run("bad password is UNAUTHENTICATED", bad_password)
    r.run("missing credentials are UNAUTHENTICATED", missing_credentials)
    r.run("metadata (get_info, table types, get_objects, table schema)", metadata)
    r.run("query with types", query_and_types)
    r.run("DDL and DML with row counts", ddl_and_dml)
    r.run("prepared statements with parameters", prepared_statements)
    r.run("bad SQL then a good query on the same connection", bad_sql_then_good_query)
    r.run("SET is per session", set_is_per_session)
    r.run("16 concurrent clients", concurrent_clients)
    r.finish()


if __name__ == "__main__":
    main()
