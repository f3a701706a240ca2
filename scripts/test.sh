#!/usr/bin/env bash
# Runs Weir's whole test suite: installs what the tests need, builds, and runs every test
# (unit tests, sqllogictests under sql-tests/, CLI and pseudo-terminal shell tests).
#
# The cargo target directory is shared outside the checkout so repeated runs (and CI on the same
# machine) reuse the build: WEIR_TARGET_DIR, default ~/.cache/weir-target.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${WEIR_TARGET_DIR:-$HOME/.cache/weir-target}"
export CARGO_TERM_COLOR=never
export CARGO_INCREMENTAL=0

# What the tests need: a Rust toolchain (cargo), python3 with venv (the Python clients below) and
# Java 17+ (the Hive Metastore peer; its setup installs a JDK with apt-get when run as root).
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required: install Rust from https://rustup.rs" >&2
  exit 1
fi

# Python clients the tests drive Weir with (ADBC Flight SQL driver, pyarrow, DuckDB, DataFusion),
# pinned in scripts/requirements-test.txt, installed once into a venv outside the checkout.
echo "== python test clients"
export WEIR_PY_VENV="${WEIR_PY_VENV:-$HOME/.cache/weir-py}"
if [ ! -x "$WEIR_PY_VENV/bin/python" ]; then
  python3 -m venv "$WEIR_PY_VENV"
fi
req_sum=$(sha256sum scripts/requirements-test.txt | cut -d' ' -f1)
if [ "$(cat "$WEIR_PY_VENV/.weir-requirements.sha256" 2>/dev/null)" != "$req_sum" ]; then
  "$WEIR_PY_VENV/bin/python" -m pip install --disable-pip-version-check -q -r scripts/requirements-test.txt
  echo "$req_sum" > "$WEIR_PY_VENV/.weir-requirements.sha256"
fi
export WEIR_PYTHON="$WEIR_PY_VENV/bin/python"
# Tests that need a peer (Python clients, the Hive Metastore) fail instead of skipping when it is
# missing: this script provides every peer.
export WEIR_REQUIRE_PEERS=1
# The long suites (the full scheduling-independence matrices, ten runs of each repeatability
# query) run unless WEIR_LONG_TESTS=0 is set for a quicker local run.
export WEIR_LONG_TESTS="${WEIR_LONG_TESTS:-1}"

# The Hive Metastore peer (Hive 2.3.10 from PyPI's pyspark jars, on loopback) with its sample
# tables, for tests/hive.rs; stopped when this script exits.
. scripts/hive-peer.sh

echo "== build"
cargo build --all-targets

echo "== tests"
# `cargo test` (not nextest): sql-tests run in a custom harness that prints "N passed, N failed".
cargo test --no-fail-fast --all-targets
