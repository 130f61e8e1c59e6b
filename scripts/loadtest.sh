#!/usr/bin/env bash
# The load test on a fresh machine: installs and starts real Apache Kafka
# (scripts/kafka.sh) and the embedded ClickHouse (scripts/chdb.sh,
# reel-chdb), runs `reel loadtest`, stops both and prints where the report is.
#
#   bash scripts/loadtest.sh                       # default run (~5 minutes)
#   bash scripts/loadtest.sh -duration 60s -rate 5000 -levels 0.5
#   bash scripts/loadtest.sh -scale                # plus the scale curve (long)
#
# Flags pass through to `reel loadtest` (see `reel loadtest -h` and
# docs/loadtest.md). Results go
# to results/<timestamp>/ (git-ignored). Environment: REEL_CACHE,
# REEL_KAFKA_PORT (default: the first free range from 19692).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
die() { echo "loadtest.sh: error: $*" >&2; exit 1; }
step() { echo "==> $*" >&2; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

command -v go >/dev/null || die "go is not on PATH"

step "ClickHouse: bash scripts/chdb.sh install"
bash scripts/chdb.sh install >&2 || die "scripts/chdb.sh install failed"
chdb_bin=$(bash scripts/chdb.sh path)
[[ -x $chdb_bin ]] || die "reel-chdb not found at $chdb_bin"

step "reel: CGO_ENABLED=0 go build"
bin_dir=$(mktemp -d)
data_dir=$(mktemp -d)
CGO_ENABLED=0 go build -o "$bin_dir/reel" ./cmd/reel

started_kafka= chdb_pid=
cleanup() {
	local rc=$?
	if [[ -n $chdb_pid ]]; then
		kill "$chdb_pid" 2>/dev/null || true
		wait "$chdb_pid" 2>/dev/null || true
	fi
	if [[ -n $started_kafka ]]; then
		bash scripts/kafka.sh stop >&2 || true
	fi
	rm -rf "$bin_dir" "$data_dir"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z ${REEL_KAFKA_PORT:-} ]]; then
	for base in 19692 19792 19892 19992 20092 20192; do
		if port_free "$base" && port_free $((base + 1)) && port_free $((base + 2)); then
			export REEL_KAFKA_PORT=$base
			break
		fi
	done
	[[ -n ${REEL_KAFKA_PORT:-} ]] || die "no free port range for Kafka; set REEL_KAFKA_PORT"
fi
step "Kafka: install and start on 127.0.0.1:$REEL_KAFKA_PORT"
bash scripts/kafka.sh install
started_kafka=1
kafka_env=$(bash scripts/kafka.sh start) || die "Kafka did not start (bash scripts/kafka.sh logs)"
brokers=$(sed -n 's/^REEL_KAFKA_BROKERS=//p' <<<"$kafka_env")
[[ -n $brokers ]] || die "scripts/kafka.sh start printed no REEL_KAFKA_BROKERS"

ch_port=
for p in 18623 18723 18823 18923; do
	if port_free "$p"; then ch_port=$p; break; fi
done
[[ -n $ch_port ]] || die "no free port for reel-chdb"
step "ClickHouse: reel-chdb on 127.0.0.1:$ch_port"
"$chdb_bin" -listen "127.0.0.1:$ch_port" -path "$data_dir/clickhouse" >"$data_dir/chdb.log" 2>&1 &
chdb_pid=$!
for _ in $(seq 1 100); do
	curl -fs "http://127.0.0.1:$ch_port/ping" >/dev/null 2>&1 && break
	sleep 0.2
done
curl -fs "http://127.0.0.1:$ch_port/" --data-binary 'SELECT 1' >/dev/null || die "reel-chdb did not answer (log: $data_dir/chdb.log)"

# The report says which process used the cores in each phase.
watch="clickhouse=$chdb_pid"
kafka_pid=$(bash scripts/kafka.sh status 2>/dev/null | sed -n 's/.*running, pid \([0-9]*\),.*/\1/p' | head -n 1 || true)
[[ -n $kafka_pid ]] && watch+=",kafka=$kafka_pid"

step "reel loadtest -brokers $brokers -clickhouse http://127.0.0.1:$ch_port/default -watch $watch $*"
"$bin_dir/reel" loadtest -brokers "$brokers" -clickhouse "http://127.0.0.1:$ch_port/default" -watch "$watch" "$@"
