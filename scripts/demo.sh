#!/usr/bin/env bash
# The demo: events produced, projected and queried with SQL, on embedded
# defaults (Kafka: kfake in process; ClickHouse: reel-chdb, the real engine).
#
#   bash scripts/demo.sh                  # until Ctrl-C
#   bash scripts/demo.sh -duration 30s    # reel dev flags pass through
#
# Installs the embedded ClickHouse on first use (cached under $REEL_CACHE,
# default ~/.cache/reel), builds reel, then runs `reel dev`. With
# REEL_CLICKHOUSE_DSN set, that ClickHouse is used instead.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
REEL_CACHE=${REEL_CACHE:-$HOME/.cache/reel}
if [[ -z ${REEL_CLICKHOUSE_DSN:-} ]]; then
	echo "demo: installing the embedded ClickHouse (first run downloads ~150 MB)" >&2
	bash scripts/chdb.sh install >&2
	export REEL_CHDB_BIN=$(bash scripts/chdb.sh path)
fi
mkdir -p "$REEL_CACHE/bin"
CGO_ENABLED=0 go build -o "$REEL_CACHE/bin/reel" ./cmd/reel
exec "$REEL_CACHE/bin/reel" dev "$@"
