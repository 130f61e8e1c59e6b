#!/usr/bin/env bash
# Reel's embedded ClickHouse: the real ClickHouse engine (libchdb, from npm)
# behind our ClickHouse-HTTP server cmd/reel-chdb.
#
#   bash scripts/chdb.sh install   # fetch libchdb once, build $REEL_CACHE/bin/reel-chdb
#   bash scripts/chdb.sh path      # print the reel-chdb binary path
#   bash scripts/chdb.sh lib       # print the directory holding libchdb.so
#
# REEL_CACHE defaults to ~/.cache/reel. The library (~543 MB) is never committed.
set -euo pipefail

CHDB_NPM_PKG="@chdb/lib-linux-x64-gnu"
CHDB_NPM_VERSION="26.7.3-stable.1"

cache="${REEL_CACHE:-$HOME/.cache/reel}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
npmdir="$cache/chdb"
libdir="$npmdir/node_modules/$CHDB_NPM_PKG"
bin="$cache/bin/reel-chdb"

die() { echo "chdb.sh: $*" >&2; exit 1; }

have_lib() {
	[[ -f "$libdir/libchdb.so" && -f "$libdir/package.json" ]] &&
		grep -q "\"version\": *\"$CHDB_NPM_VERSION\"" "$libdir/package.json"
}

install_lib() {
	if have_lib; then
		echo "chdb.sh: libchdb $CHDB_NPM_VERSION already in $libdir" >&2
		return
	fi
	command -v npm >/dev/null || die "npm is required to download libchdb"
	mkdir -p "$npmdir"
	[[ -f "$npmdir/package.json" ]] || echo '{"name":"reel-chdb-cache","private":true}' >"$npmdir/package.json"
	echo "chdb.sh: downloading $CHDB_NPM_PKG@$CHDB_NPM_VERSION (~543 MB unpacked) into $npmdir" >&2
	npm install --prefix "$npmdir" --no-audit --no-fund --no-save --loglevel=error \
		"$CHDB_NPM_PKG@$CHDB_NPM_VERSION" >&2
	have_lib || die "npm finished but $libdir/libchdb.so is missing"
}

build_bin() {
	command -v go >/dev/null || die "go is required"
	command -v gcc >/dev/null || command -v cc >/dev/null || die "a C compiler (gcc) is required for cgo"
	mkdir -p "$(dirname "$bin")"
	echo "chdb.sh: building $bin" >&2
	# The binary dlopens libchdb.so (internal/chserver/chdb.go), so no
	# CGO_LDFLAGS are needed and `go test -tags chdb` works without any
	# environment; the installed library's path is baked in as its default.
	(cd "$root" && CGO_ENABLED=1 go build -tags chdb \
		-ldflags "-X github.com/reel-dev/reel/internal/chserver.DefaultLibPath=$libdir/libchdb.so" \
		-o "$bin.tmp" ./cmd/reel-chdb)
	mv -f "$bin.tmp" "$bin"
}

case "${1:-}" in
install)
	install_lib
	build_bin
	echo "$bin"
	;;
path) echo "$bin" ;;
lib) echo "$libdir" ;;
*)
	echo "usage: $0 install|path|lib" >&2
	exit 2
	;;
esac
