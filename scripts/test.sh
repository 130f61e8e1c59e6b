#!/usr/bin/env bash
# The test command of Reel: starts the real servers the integration suite
# needs, then vets, builds and tests.
#
#   bash scripts/test.sh                                # everything
#   bash scripts/test.sh -run TestX ./projectors/...    # go test flags and packages pass through
#
# What it does:
#   1. ClickHouse: scripts/chdb.sh install; REEL_CHDB_BIN points at reel-chdb.
#   2. Kafka: scripts/kafka.sh install + start (a fresh broker on a free port
#      from 19092 up), stopped again on exit. If REEL_KAFKA_BROKERS is already
#      set, that Kafka is used and nothing is started (set
#      REEL_KAFKA_SASL_BROKERS too, or the SASL tests fail).
#   3. Schema registry: scripts/registry.sh install + start (Apicurio Registry,
#      the Confluent API; a free port from 18081 up), stopped on exit;
#      exports REEL_REGISTRY_URL. If REEL_REGISTRY_URL is set, that registry
#      is used. It needs a Java 21+ (found by registry.sh).
#   4. Python: scripts/pyenv.sh install (the pinned confluent-kafka venv of
#      producers/crosslang) exports REEL_PYTHON.
#   5. REEL_INTEGRATION=1: tests that need a server fail instead of skipping.
#   6. go vet, CGO_ENABLED=0 go build ./cmd/reel, the library example
#      (examples/go-projection: its own module, vet + test), go test, and the
#      cgo tests of internal/chserver (-tags chdb).
#   7. A short fuzz run of every fuzz target (REEL_FUZZTIME, default 10s each;
#      0 skips; skipped when go test flags are passed).
# The exit status is non-zero if any step failed.
#
# Environment: REEL_CACHE, REEL_KAFKA_PORT (see scripts/kafka.sh),
# REEL_REGISTRY_PORT (see scripts/registry.sh), REEL_GO_TEST_TIMEOUT [30m].
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

die() {
	echo "test.sh: error: $*" >&2
	exit 1
}
step() { echo "==> $*" >&2; }

# Split the arguments into packages (./x/..., module paths) and go test flags.
pkgs=() flags=()
for a in "$@"; do
	case $a in
	./* | ../* | . | github.com/reel-dev/reel*) pkgs+=("$a") ;;
	*) flags+=("$a") ;;
	esac
done
if ((${#pkgs[@]} == 0)); then
	pkgs=(./...)
	chdb_pkgs=(./internal/chserver/...)
else
	# The cgo-only tests run only when the selection covers chserver.
	chdb_pkgs=()
	for p in "${pkgs[@]}"; do
		case $p in
		./... | ./internal/... | github.com/reel-dev/reel/... | github.com/reel-dev/reel/internal/...)
			chdb_pkgs=(./internal/chserver/...)
			break
			;;
		*internal/chserver*) chdb_pkgs+=("$p") ;;
		esac
	done
fi

command -v go >/dev/null || die "go is not on PATH"
[[ -f scripts/kafka.sh ]] || die "scripts/kafka.sh is missing"
[[ -f scripts/chdb.sh ]] || die "scripts/chdb.sh is missing: it installs the embedded ClickHouse (reel-chdb) the integration tests need"

t_start=$SECONDS

# ---- ClickHouse (embedded); first, so a failed build stops before Kafka starts
step "ClickHouse: bash scripts/chdb.sh install"
bash scripts/chdb.sh install >&2 || die "scripts/chdb.sh install failed"
REEL_CHDB_BIN=$(bash scripts/chdb.sh path)
[[ -x $REEL_CHDB_BIN ]] || die "scripts/chdb.sh path gave $REEL_CHDB_BIN, which is not an executable"
export REEL_CHDB_BIN
if [[ -z ${REEL_CHDB_LIB:-} ]] && lib=$(bash scripts/chdb.sh lib 2>/dev/null) && [[ -f $lib/libchdb.so ]]; then
	export REEL_CHDB_LIB=$lib/libchdb.so
fi

# ---- Kafka
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started_kafka= started_registry=
cleanup() {
	local rc=$?
	if [[ -n $started_registry ]]; then
		bash scripts/registry.sh stop >&2 || true
	fi
	if [[ -n $started_kafka ]]; then
		bash scripts/kafka.sh stop >&2 || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${REEL_KAFKA_BROKERS:-} ]]; then
	step "Kafka: using REEL_KAFKA_BROKERS=$REEL_KAFKA_BROKERS (not starting one)"
else
	if [[ -z ${REEL_KAFKA_PORT:-} ]]; then
		# Another run (or a developer's broker) may hold 19092: take the first
		# base port whose three ports (PLAINTEXT, controller, SASL) are free.
		for base in 19092 19192 19292 19392 19492 19592 19692 19792 19892 19992; do
			if port_free "$base" && port_free $((base + 1)) && port_free $((base + 2)); then
				export REEL_KAFKA_PORT=$base
				break
			fi
		done
		[[ -n ${REEL_KAFKA_PORT:-} ]] || die "no free port range for Kafka between 19092 and 19994; set REEL_KAFKA_PORT"
	fi
	step "Kafka: install and start on 127.0.0.1:$REEL_KAFKA_PORT"
	bash scripts/kafka.sh install
	started_kafka=1
	kafka_env=$(bash scripts/kafka.sh start) || die "Kafka did not start (see above; logs: bash scripts/kafka.sh logs)"
	while IFS='=' read -r k v; do
		case $k in
		REEL_KAFKA_BROKERS | REEL_KAFKA_SASL_BROKERS) export "$k=$v" ;;
		esac
	done <<<"$kafka_env"
	[[ -n ${REEL_KAFKA_BROKERS:-} ]] || die "scripts/kafka.sh start printed no REEL_KAFKA_BROKERS"
fi

# ---- Schema registry
if [[ -n ${REEL_REGISTRY_URL:-} ]]; then
	step "Schema registry: using REEL_REGISTRY_URL=$REEL_REGISTRY_URL (not starting one)"
else
	if [[ -z ${REEL_REGISTRY_PORT:-} ]]; then
		# HTTP port and the management port above it.
		for p in 18081 18181 18281 18381 18481 18581 18681 18781 18881 18981; do
			if port_free "$p" && port_free $((p + 1)); then
				export REEL_REGISTRY_PORT=$p
				break
			fi
		done
		[[ -n ${REEL_REGISTRY_PORT:-} ]] || die "no free port pair for the schema registry between 18081 and 18982; set REEL_REGISTRY_PORT"
	fi
	step "Schema registry: install and start Apicurio Registry on 127.0.0.1:$REEL_REGISTRY_PORT"
	bash scripts/registry.sh install
	started_registry=1
	registry_env=$(bash scripts/registry.sh start) || die "the schema registry did not start (see above; logs: bash scripts/registry.sh logs)"
	while IFS='=' read -r k v; do
		[[ $k == REEL_REGISTRY_URL ]] && export "$k=$v"
	done <<<"$registry_env"
	[[ -n ${REEL_REGISTRY_URL:-} ]] || die "scripts/registry.sh start printed no REEL_REGISTRY_URL"
fi

# ---- Python (the cross-language producers)
if [[ -z ${REEL_PYTHON:-} ]]; then
	step "Python: bash scripts/pyenv.sh install"
	py_env=$(bash scripts/pyenv.sh install) || die "scripts/pyenv.sh install failed"
	REEL_PYTHON=${py_env#REEL_PYTHON=}
fi
[[ -x $REEL_PYTHON ]] || die "REEL_PYTHON=$REEL_PYTHON is not an executable"
export REEL_PYTHON

export REEL_INTEGRATION=1
echo "test.sh: REEL_KAFKA_BROKERS=$REEL_KAFKA_BROKERS REEL_KAFKA_SASL_BROKERS=${REEL_KAFKA_SASL_BROKERS:-} REEL_REGISTRY_URL=$REEL_REGISTRY_URL REEL_PYTHON=$REEL_PYTHON REEL_CHDB_BIN=$REEL_CHDB_BIN (setup $((SECONDS - t_start))s)" >&2

# ---- vet, build, test: run every step, report all failures.
failed=()
run() { # name, command...
	local name=$1 t0=$SECONDS
	shift
	step "${*/#go_test_chdb/CGO_ENABLED=1 go test -count=1 -tags chdb}"
	if "$@"; then
		echo "test.sh: $name ok ($((SECONDS - t0))s)" >&2
	else
		echo "test.sh: $name FAILED ($((SECONDS - t0))s)" >&2
		failed+=("$name")
	fi
}

run vet go vet "${pkgs[@]}"
if [[ -d cmd/reel ]]; then
	run build env CGO_ENABLED=0 go build -o /dev/null ./cmd/reel
fi
run helm-check bash scripts/helm-check.sh --no-go-tests
# examples/go-projection: a team's own binary in its own module (replace
# directive to this tree, go.sum committed); -mod=mod resolves from the
# module cache and the Go proxy only, never sum.golang.org's lookups for
# modules its go.sum already lists.
if [[ -d examples/go-projection ]]; then
	run example-go-projection env -C examples/go-projection GOFLAGS=-mod=mod \
		sh -c 'go vet ./... && go test -count=1 ./...'
fi
# -p 1: packages share the one real broker and registry, and testenv.Kafka
# and testenv.Registry empty them before each test, so test packages must
# not run at the same time.
run test go test -p 1 -count=1 -timeout "${REEL_GO_TEST_TIMEOUT:-30m}" "${flags[@]}" "${pkgs[@]}"
if ((${#chdb_pkgs[@]} > 0)); then
	# chdb.sh loads libchdb at run time (found through REEL_CACHE); if it
	# grows an `env` subcommand with build settings, those are applied too.
	chdb_env=$(bash scripts/chdb.sh env 2>/dev/null) || chdb_env=
	go_test_chdb() {
		(
			eval "$chdb_env"
			CGO_ENABLED=1 go test -count=1 -timeout "${REEL_GO_TEST_TIMEOUT:-30m}" -tags chdb "$@"
		)
	}
	run test-chdb go_test_chdb "${flags[@]}" "${chdb_pkgs[@]}"
fi

# A short fuzz run per target (the committed corpus under testdata/fuzz is
# replayed by go test above on every run). REEL_FUZZTIME=0 skips it.
fuzztime=${REEL_FUZZTIME:-10s}
if [[ $fuzztime != 0 && ${#flags[@]} -eq 0 ]]; then
	for target in ./schemas:FuzzDecode ./internal/config:FuzzParse; do
		run "fuzz ${target#*:}" go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzztime" "${target%%:*}"
	done
fi

if ((${#failed[@]} > 0)); then
	echo "test.sh: FAILED: ${failed[*]} (total $((SECONDS - t_start))s)" >&2
	if [[ -n $started_kafka ]]; then
		echo "test.sh: Kafka broker log: bash scripts/kafka.sh logs  (REEL_KAFKA_PORT=${REEL_KAFKA_PORT:-19092})" >&2
	fi
	if [[ -n $started_registry ]]; then
		echo "test.sh: registry log: bash scripts/registry.sh logs  (REEL_REGISTRY_PORT=${REEL_REGISTRY_PORT:-18081})" >&2
	fi
	exit 1
fi
echo "test.sh: all passed (total $((SECONDS - t_start))s)" >&2
