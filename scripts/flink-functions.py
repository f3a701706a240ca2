#!/usr/bin/env python3
"""Apache Flink's answers to the differential corpus of built-in functions.

Reads `tests/data/flink-function-exprs.txt` (one expression per line, or a whole one-column
`SELECT`), runs each through a PyFlink TableEnvironment in batch mode with
'table.local-time-zone' = 'UTC', and prints one JSON object per line: the expression, Flink's
result type (Java's `DataType#toString`, without NOT NULL) and the value rendered as text (see
`render`), or the error. The output is stored as `tests/data/flink-functions.jsonl` and checked
against Weir by `tests/flink_functions.rs`.

Run through `scripts/flink-functions.sh` (sets up the PyFlink venv), from the repository root:
    scripts/flink-functions.sh > tests/data/flink-functions.jsonl

Expressions are planned one at a time (types and planning errors), then executed many per job
(one column each) to keep the run to a few minutes; a job that fails is re-run one expression
at a time so that each error lands on its own expression.
"""

import datetime
import decimal
import json
import re
import sys

from pyflink.table import EnvironmentSettings, TableEnvironment

CHUNK = 40


def read_corpus(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            out.append(line)
    return out


def query_of(expr):
    return expr if expr.startswith("SELECT ") else f"SELECT {expr} AS r"


def precision(ty):
    m = re.match(r"TIMESTAMP(?:_LTZ)?\((\d)\)", ty)
    return int(m.group(1)) if m else 6


def render(value, ty=""):
    """Flink's text for a value, as its SQL client prints it (maps with sorted entries)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, datetime.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        p = precision(ty)
        if p > 0:
            text += "." + f"{value.microsecond:06d}{'0' * 3}"[:p]
        return text
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, (bytes, bytearray)):
        return "x'" + bytes(value).hex() + "'"
    if isinstance(value, list):
        return "[" + ", ".join("NULL" if v is None else render(v) for v in value) + "]"
    if isinstance(value, dict):
        entries = sorted(
            f"{'NULL' if k is None else render(k)}={'NULL' if v is None else render(v)}"
            for k, v in value.items()
        )
        return "{" + ", ".join(entries) + "}"
    return str(value)


def first_line(e):
    """The Java exception's message: the deepest `Caused by:`, else the first exception line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    causes = [line[len("Caused by: ") :] for line in lines if line.startswith("Caused by: ")]
    if causes:
        return causes[-1][:300]
    for line in lines:
        line = line.lstrip(": ")
        if re.match(r"^[\w.$]+(Exception|Error)\b", line):
            return line[:300]
    return (lines[0] if lines else type(e).__name__)[:300]


def via_cast(ty):
    """Types PyFlink cannot hand to Python (TIMESTAMP_LTZ, rows) are read as Flink's own
    `CAST(... AS STRING)`, the text its SQL client prints."""
    return "TIMESTAMP_LTZ" in ty or "ROW<" in ty


def main():
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("parallelism.default", "1")
    env.get_config().set("table.local-time-zone", "UTC")
    exprs = read_corpus(sys.argv[1] if len(sys.argv) > 1 else "tests/data/flink-function-exprs.txt")
    rows = {}
    types = {}
    for expr in exprs:
        try:
            table = env.sql_query(query_of(expr))
            ty = str(table._j_table.getResolvedSchema().getColumnDataTypes().get(0).toString())
            types[expr] = ty.replace(" NOT NULL", "")
        except Exception as e:  # noqa: BLE001 - recorded: Flink rejects the expression
            rows[expr] = {"expr": expr, "error": first_line(e)}

    def run_one(expr):
        query = query_of(expr)
        if via_cast(types[expr]) or expr in retry_as_text:
            if expr.startswith("SELECT "):
                query = f"SELECT CAST(r AS STRING) AS r FROM ({expr})"
            else:
                query = f"SELECT CAST({expr} AS STRING) AS r"
        try:
            with env.sql_query(query).execute().collect() as results:
                values = [r[0] for r in results]
            value = values[0] if values else None
            rows[expr] = {"expr": expr, "type": types[expr], "value": render(value, types[expr])}
        except Exception as e:  # noqa: BLE001 - recorded: a runtime error
            message = first_line(e)
            # PyFlink fails to unpickle collections holding NULLs: read those as text.
            if "Ran out of input" in str(e) and expr not in retry_as_text:
                retry_as_text.add(expr)
                return run_one(expr)
            rows[expr] = {"expr": expr, "error": message}

    retry_as_text = set()
    plain = [
        e for e in exprs if e in types and not e.startswith("SELECT ") and not via_cast(types[e])
    ]
    for e in exprs:
        if e in types and via_cast(types[e]):
            run_one(e)
    for e in exprs:
        if e in types and e.startswith("SELECT "):
            run_one(e)
    for i in range(0, len(plain), CHUNK):
        chunk = plain[i : i + CHUNK]
        sql = "SELECT " + ", ".join(f"{e} AS c{j}" for j, e in enumerate(chunk))
        try:
            with env.sql_query(sql).execute().collect() as results:
                values = [list(r) for r in results]
            for j, e in enumerate(chunk):
                rows[e] = {"expr": e, "type": types[e], "value": render(values[0][j], types[e])}
        except Exception:  # noqa: BLE001 - one of them fails: find which
            for e in chunk:
                run_one(e)
        print(f"{min(i + CHUNK, len(plain))}/{len(plain)}", file=sys.stderr, flush=True)
    for expr in exprs:
        print(json.dumps(rows[expr], ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
