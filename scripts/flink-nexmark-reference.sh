#!/usr/bin/env bash
# Regenerates sql-tests/nexmark/expected-flink/ (Apache Flink's answers to the Nexmark queries
# over Weir's generated NDJSON files): installs PyFlink into a venv outside the checkout
# (PYFLINK_VENV, default ~/.cache/pyflink) and runs scripts/flink-nexmark-reference.py with the
# given arguments (see its --help). Needs Java 17 and a Rust toolchain.
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
exec "$venv/bin/python" scripts/flink-nexmark-reference.py "$@"
