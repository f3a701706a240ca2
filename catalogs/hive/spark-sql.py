#!/usr/bin/env python3
"""Run SQL statements with PySpark against a Hive Metastore; print the last one's rows as JSON.

Used by Weir's Hive round-trip test (tests/hive.rs): Spark reads tables Weir wrote and writes
into tables Weir created. Run it with the Hive peer's venv python (it has pyspark):

    "$HIVE_PEER_HOME/venv/bin/python" spark-sql.py --uri thrift://127.0.0.1:9083 \
        --warehouse /path/to/warehouse --scratch /tmp/x "INSERT INTO db.t VALUES (1)" "SELECT * FROM db.t"

Output (stdout, one line): {"columns": [...], "rows": [[...], ...]} for the last statement.
Decimals, dates and timestamps are strings (timestamps as 'YYYY-MM-DD HH:MM:SS[.ffffff]'), maps
are objects, structs are objects. Everything runs in UTC, with the driver on loopback.
"""

import argparse
import datetime as dt
import decimal
import json
import os
import sys
import time


def to_json(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    if hasattr(v, "asDict"):
        return {k: to_json(x) for k, x in v.asDict().items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    return str(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("statements", nargs="+")
    args = ap.parse_args()

    os.environ["TZ"] = "UTC"
    time.tzset()
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession

    scratch = os.path.abspath(args.scratch)
    os.makedirs(scratch, exist_ok=True)
    java_opts = "-Duser.timezone=UTC -Djava.io.tmpdir=%s -Dderby.system.home=%s" % (scratch, scratch)
    spark = (SparkSession.builder
             .master("local[1]")
             .appName("weir-hive-round-trip")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.extraJavaOptions", java_opts)
             .config("spark.local.dir", os.path.join(scratch, "local"))
             .config("spark.sql.catalogImplementation", "hive")
             .config("spark.hadoop.hive.metastore.uris", args.uri)
             .config("spark.sql.warehouse.dir", "file://" + os.path.abspath(args.warehouse))
             .config("spark.hadoop.hive.exec.scratchdir", os.path.join(scratch, "hive-scratch"))
             .config("spark.hadoop.hive.exec.local.scratchdir", os.path.join(scratch, "hive-local"))
             .config("spark.hadoop.hive.exec.dynamic.partition.mode", "nonstrict")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "1")
             .enableHiveSupport()
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    result = None
    try:
        for stmt in args.statements:
            result = spark.sql(stmt)
        rows = result.collect()
        out = {"columns": result.columns, "rows": [[to_json(v) for v in r] for r in rows]}
        print(json.dumps(out))
    except Exception as e:  # noqa: BLE001
        print("spark-sql: ERROR: %s" % e, file=sys.stderr)
        sys.exit(1)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
