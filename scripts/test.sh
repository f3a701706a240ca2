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

# What the tests need: a Rust toolchain (cargo). The pseudo-terminal shell test drives the real
# binary through expectrl (a dev-dependency), so no system package is required.
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required: install Rust from https://rustup.rs" >&2
  exit 1
fi

echo "== build"
cargo build --all-targets

echo "== tests"
# `cargo test` (not nextest): sql-tests run in a custom harness that prints "N passed, N failed".
cargo test --no-fail-fast --all-targets
