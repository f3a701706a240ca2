# Sourced by scripts/test.sh: sets up the Hive Metastore test peer (catalogs/hive/peer) and
# exports what tests/hive.rs reads:
#   WEIR_HMS_URI            thrift://127.0.0.1:<port> of a running Hive 2.3.10 metastore
#   WEIR_HIVE_EXPECTED      expected.json of the sample tables (make-sample-tables.py)
#   WEIR_HIVE_WAREHOUSE     the metastore's warehouse directory
#   WEIR_HIVE_SPARK_PYTHON  the peer venv's python (has pyspark), for the Spark round trip
#   WEIR_HIVE_PEER_HOME     where setup.sh installed the peer (tests start private metastores)
#
# The metastore's data lives in ${WEIR_HIVE_DATA:-$HOME/.cache/weir-hive} and is reused between
# runs (a restart takes seconds); the sample tables are made again only when expected.json is
# missing or make-sample-tables.py changed. The metastore is stopped when the sourcing shell
# exits (trap on EXIT).
set -euo pipefail

_weir_hive_peer="$(cd "$(dirname "${BASH_SOURCE[0]}")/../catalogs/hive/peer" && pwd)"
export HIVE_PEER_HOME="${HIVE_PEER_HOME:-$HOME/.cache/hive-peer}"
export WEIR_HIVE_DATA="${WEIR_HIVE_DATA:-$HOME/.cache/weir-hive}"

echo "== hive metastore peer ($WEIR_HIVE_DATA)"
"$_weir_hive_peer/setup.sh" >&2
mkdir -p "$WEIR_HIVE_DATA"
trap '"$_weir_hive_peer/stop-metastore.sh" "$WEIR_HIVE_DATA" >&2 || true' EXIT
HMS_PORT=0 "$_weir_hive_peer/start-metastore.sh" "$WEIR_HIVE_DATA" >/dev/null
# shellcheck disable=SC1091
. "$WEIR_HIVE_DATA/metastore.env"

_weir_hive_sum=$(sha256sum "$_weir_hive_peer/make-sample-tables.py" | cut -d' ' -f1)
if [ ! -s "$WEIR_HIVE_DATA/expected.json" ] \
  || [ "$(cat "$WEIR_HIVE_DATA/expected.sha256" 2>/dev/null)" != "$_weir_hive_sum" ]; then
  rm -f "$WEIR_HIVE_DATA/expected.json"
  "$HIVE_PEER_HOME/venv/bin/python" "$_weir_hive_peer/make-sample-tables.py" \
    --uri "$HMS_URI" --warehouse "$HMS_WAREHOUSE" --out "$WEIR_HIVE_DATA/expected.json" >&2
  echo "$_weir_hive_sum" > "$WEIR_HIVE_DATA/expected.sha256"
fi

export WEIR_HMS_URI="$HMS_URI"
export WEIR_HIVE_EXPECTED="$WEIR_HIVE_DATA/expected.json"
export WEIR_HIVE_WAREHOUSE="$HMS_WAREHOUSE"
export WEIR_HIVE_SPARK_PYTHON="$HIVE_PEER_HOME/venv/bin/python"
export WEIR_HIVE_PEER_HOME="$HIVE_PEER_HOME"
echo "hive metastore at $WEIR_HMS_URI"
