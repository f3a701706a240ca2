#!/usr/bin/env python3
"""Result types and values of aggregates and arithmetic in Apache Flink (batch mode).

Runs each expression of `EXPRESSIONS` over small typed views through a PyFlink
TableEnvironment and prints one JSON object per line: the expression, Flink's result type
(without NOT NULL) and the value as a string (or the error). The output is stored as
`tests/data/flink-types.jsonl` and checked against Weir by `tests/flink_types.rs`.

Setup (Java 17):
    python3 -m venv ~/.cache/pyflink
    ~/.cache/pyflink/bin/pip install apache-flink==2.3.0 apache-flink-libraries==2.3.0
    ~/.cache/pyflink/bin/python scripts/flink-types.py > tests/data/flink-types.jsonl

Each query is a Flink job of a few seconds: the whole run takes about 15 minutes.
"""

import json
import sys

from pyflink.table import EnvironmentSettings, TableEnvironment

# The views, in SQL both Flink and Weir accept. `t`: three rows per type, with a negative value
# so that integer division shows its rounding; `u`: one row of left (`a_`) and right (`b_`)
# operands for arithmetic.
VIEWS = [
    """CREATE TEMPORARY VIEW t AS SELECT
         CAST(x AS TINYINT) AS ti, CAST(x AS SMALLINT) AS si, CAST(x AS INT) AS i,
         CAST(x AS BIGINT) AS b, CAST(f AS FLOAT) AS f, CAST(f AS DOUBLE) AS d,
         CAST(dm AS DECIMAL(10, 2)) AS dm
       FROM (VALUES (1, 1.5, 1.00), (2, 2.25, 2.00), (-7, -7.0, -7.01)) AS v(x, f, dm)""",
    """CREATE TEMPORARY VIEW u AS SELECT
         CAST(7 AS TINYINT) AS a_ti, CAST(7 AS SMALLINT) AS a_si, CAST(7 AS INT) AS a_i,
         CAST(7 AS BIGINT) AS a_b, CAST(1.5 AS FLOAT) AS a_f, CAST(2.25 AS DOUBLE) AS a_d,
         CAST(2.50 AS DECIMAL(10, 2)) AS a_dm,
         CAST(-2 AS TINYINT) AS b_ti, CAST(-2 AS SMALLINT) AS b_si, CAST(-2 AS INT) AS b_i,
         CAST(-2 AS BIGINT) AS b_b, CAST(0.5 AS FLOAT) AS b_f, CAST(-0.75 AS DOUBLE) AS b_d,
         CAST(0.3 AS DECIMAL(5, 3)) AS b_dm""",
]

COLUMNS = ["ti", "si", "i", "b", "f", "d", "dm"]
AGGREGATES = [
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "STDDEV_POP",
    "STDDEV_SAMP",
    "VAR_POP",
    "VAR_SAMP",
]
OPERATORS = ["+", "-", "*", "/", "%"]


def expressions():
    for agg in AGGREGATES:
        for c in COLUMNS:
            yield "t", f"{agg}({c})"
    for c in COLUMNS:
        yield "t", f"SUM(DISTINCT {c})"
        yield "t", f"AVG(DISTINCT {c})"
    for op in OPERATORS:
        for a in COLUMNS:
            for b in COLUMNS:
                yield "u", f"a_{a} {op} b_{b}"


def main():
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("parallelism.default", "1")
    for view in VIEWS:
        env.execute_sql(view)
    # `flink-types.py N`: skip the first N expressions (to resume an interrupted run).
    skip = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    for view, expr in list(expressions())[skip:]:
        row = {"view": view, "expr": expr}
        try:
            table = env.sql_query(f"SELECT {expr} AS r FROM {view}")
            # Java's DataType#toString: `DECIMAL(38, 6)`, `INT NOT NULL` (PyFlink's own
            # rendering drops decimal precision and scale).
            ty = str(table._j_table.getResolvedSchema().getColumnDataTypes().get(0).toString())
            row["type"] = ty.removesuffix(" NOT NULL")
            with table.execute().collect() as results:
                values = [r[0] for r in results]
            value = values[0] if values else None
            row["value"] = None if value is None else str(value)
        except Exception as e:  # noqa: BLE001 - recorded: Flink rejects some combinations
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            row = {"view": view, "expr": expr, "error": message[:200]}
        print(json.dumps(row), flush=True)
        print(json.dumps(row), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
