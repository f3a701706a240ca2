#!/usr/bin/env bash
# Regenerates tests/data/flink-functions.jsonl (Apache Flink 2.3's types and values for the
# expressions of tests/data/flink-function-exprs.txt), the expected answers of
# tests/flink_functions.rs:
#     scripts/flink-functions.sh > tests/data/flink-functions.jsonl
# Installs PyFlink into a venv outside the checkout (PYFLINK_VENV, default ~/.cache/pyflink) the
# way scripts/flink-nexmark-reference.sh does. Needs Java 17. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

FLINK_VERSION=2.3.0
venv="${PYFLINK_VENV:-$HOME/.cache/pyflink}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import pyflink.version as v; assert v.__version__ == '$FLINK_VERSION'" 2>/dev/null; then
  "$venv/bin/pip" install --disable-pip-version-check -q \
    "apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION"
fi
exec "$venv/bin/python" scripts/flink-functions.py "$@"
