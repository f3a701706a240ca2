"""Writes the TPC-H reference answers tpch/answers/sf<SF>/qNN.csv by running the repository's
query texts (tpch/queries/qNN.sql) in DuckDB over Weir's generated Parquet data.

Usage: python make_answers.py DATA_DIR OUT_DIR   (DATA_DIR as written by `weir bench tpch`)

The CSV dialect is the one src/bench/answers.rs reads: a header line, fields separated by
commas, quoted with '"' when they contain a comma, quote or line break or are empty strings;
an empty unquoted field is NULL. Values are Python's str() of DuckDB's values (exact decimals).
"""
import os
import sys

import duckdb

TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]


def cell(v):
    if v is None:
        return ""
    s = str(v)
    if s == "" or any(c in s for c in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s


def main():
    data, out = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    queries = os.path.join(here, "..", "queries")
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}/*.parquet')")
    os.makedirs(out, exist_ok=True)
    for n in range(1, 23):
        with open(os.path.join(queries, f"q{n:02}.sql")) as f:
            sql = f.read()
        cur = con.execute(sql)
        header = [d[0] for d in cur.description]
        rows = cur.fetchall()
        with open(os.path.join(out, f"q{n:02}.csv"), "w", newline="") as f:
            f.write(",".join(cell(h) for h in header) + "\n")
            for r in rows:
                f.write(",".join(cell(v) for v in r) + "\n")
        print(f"q{n:02}: {len(rows)} rows")


if __name__ == "__main__":
    main()
