#!/usr/bin/env bash
# The Python virtualenv of the cross-language producers
# (producers/crosslang/python): confluent-kafka with its Avro serializer,
# every package pinned in producers/crosslang/python/requirements.txt,
# from PyPI, created on first use under the cache — never in the checkout.
#
#   bash scripts/pyenv.sh install   # create it if needed; prints REEL_PYTHON=<venv>/bin/python
#   bash scripts/pyenv.sh path      # the venv's python, if it exists
#
# Environment (defaults in brackets):
#   REEL_CACHE        cache root [~/.cache/reel]
#   REEL_PYTHON_BASE  interpreter the venv is made from [python3]
#
# The venv lives in $REEL_CACHE/py/<key>, the key naming the interpreter's
# version and a hash of the requirements file: changing a pin makes a new
# venv, and an unchanged one is reused in well under a second.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${REEL_CACHE:-$HOME/.cache/reel}
REQ=$ROOT/producers/crosslang/python/requirements.txt
BASE=${REEL_PYTHON_BASE:-python3}

log() { echo "pyenv.sh: $*" >&2; }
die() {
	echo "pyenv.sh: error: $*" >&2
	exit 1
}

[[ -f $REQ ]] || die "$REQ is missing"
command -v "$BASE" >/dev/null 2>&1 || die "$BASE not found on PATH (set REEL_PYTHON_BASE to a Python 3.10+ interpreter)"
pyver=$("$BASE" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$BASE does not run"
"$BASE" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$BASE is Python $pyver; the pinned requirements need 3.10+ (set REEL_PYTHON_BASE)"
key=py$pyver-$(sha256sum "$REQ" | cut -c1-12)
VENV=$CACHE/py/$key

cmd_install() {
	if [[ -f $VENV/.complete ]]; then
		echo "REEL_PYTHON=$VENV/bin/python"
		return
	fi
	mkdir -p "$CACHE/py"
	(
		flock 9
		[[ -f $VENV/.complete ]] && exit 0
		local t0=$SECONDS
		# A half-made venv (an interrupted run) is started over: venvs hold
		# absolute paths, so it is built in place rather than moved there.
		rm -rf "$VENV"
		log "creating $VENV from $BASE ($pyver) with $(grep -c '==' "$REQ") pinned packages from PyPI"
		"$BASE" -m venv "$VENV" || die "python -m venv failed (Debian: apt-get install python3-venv)"
		if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$REQ" >"$VENV.log" 2>&1; then
			tail -n 25 "$VENV.log" >&2
			die "pip install -r $REQ failed (log $VENV.log)"
		fi
		"$VENV/bin/python" -m pip check >&2 || die "the pinned requirements conflict (pip check above)"
		"$VENV/bin/python" -c 'from confluent_kafka.schema_registry.avro import AvroSerializer' ||
			die "confluent_kafka's AvroSerializer does not import in $VENV"
		touch "$VENV/.complete"
		log "created in $((SECONDS - t0))s"
	) 9>"$CACHE/py/.lock"
	echo "REEL_PYTHON=$VENV/bin/python"
}

case ${1:-} in
install) cmd_install ;;
path) [[ -f $VENV/.complete ]] && echo "$VENV/bin/python" ;;
*)
	echo "usage: bash scripts/pyenv.sh install|path" >&2
	exit 2
	;;
esac
