#!/usr/bin/env bash
# Installs the offline chart-validation tools into $REEL_CACHE (default
# ~/.cache/reel), outside the checkout, from the Go module proxy only:
#
#   helm          go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION
#   kubeconform   go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION
#   schemas       Kubernetes JSON schemas generated from api/openapi-spec/swagger.json
#                 of the module k8s.io/kubernetes@v$K8S_VERSION (go mod download)
#                 by internal/chart/kubeschema
#
#   bash scripts/helm-tools.sh install   # idempotent; a second run does nothing
#   bash scripts/helm-tools.sh env       # install, then print HELM=… KUBECONFORM=… KUBE_SCHEMAS=… K8S_VERSION=…
#
# Each tool lives under a versioned name, so bumping a version below installs
# the new one next to the old.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
KUBECONFORM_VERSION=${KUBECONFORM_VERSION:-v0.8.0}
K8S_VERSION=${K8S_VERSION:-1.37.2}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${REEL_CACHE:-$HOME/.cache/reel}
TOOLS=$CACHE/helm-tools
BIN=$TOOLS/bin
SCHEMAS=$CACHE/kubeschemas
SCHEMA_DIR=$SCHEMAS/v$K8S_VERSION-standalone-strict

die() {
	echo "helm-tools.sh: error: $*" >&2
	exit 1
}
say() { echo "helm-tools.sh: $*" >&2; }

command -v go >/dev/null || die "go is not on PATH"

# go install pkg@version into a versioned file name.
install_go_tool() { # name, package, version, ldflags, file name under $BIN
	local name=$1 pkg=$2 version=$3 ldflags=$4 tmp
	local dest=$BIN/$5
	if [[ -x $dest ]]; then
		return 0
	fi
	say "installing $name $version (go install $pkg@$version)"
	tmp=$(mktemp -d "$TOOLS/tmp.XXXXXX")
	# Outside the checkout so that Reel's go.mod plays no part.
	(cd "$tmp" && GOFLAGS=-buildvcs=false GOBIN=$tmp CGO_ENABLED=0 go install -trimpath -ldflags="$ldflags" "$pkg@$version") ||
		{ rm -rf "$tmp"; die "go install $pkg@$version failed"; }
	mv "$tmp/$name" "$dest"
	rm -rf "$tmp"
}

install_schemas() {
	if [[ -f $SCHEMA_DIR/.complete ]]; then
		return 0
	fi
	say "generating Kubernetes $K8S_VERSION JSON schemas (go mod download k8s.io/kubernetes@v$K8S_VERSION)"
	local json dir tmp
	json=$(cd "$TOOLS" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION") ||
		die "go mod download k8s.io/kubernetes@v$K8S_VERSION failed: $json"
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
	[[ -f $dir/api/openapi-spec/swagger.json ]] ||
		die "k8s.io/kubernetes@v$K8S_VERSION has no api/openapi-spec/swagger.json (Dir=$dir)"
	tmp=$(mktemp -d "$SCHEMAS/tmp.XXXXXX")
	(cd "$ROOT" && CGO_ENABLED=0 go build -o "$BIN/kubeschema" ./internal/chart/kubeschema) || die "building internal/chart/kubeschema failed"
	"$BIN/kubeschema" -in "$dir/api/openapi-spec/swagger.json" -out "$tmp" || { rm -rf "$tmp"; die "kubeschema failed"; }
	touch "$tmp/.complete"
	rm -rf "$SCHEMA_DIR"
	mv "$tmp" "$SCHEMA_DIR"
}

install_all() {
	mkdir -p "$BIN" "$SCHEMAS"
	# One installer at a time (parallel CI jobs on one cache).
	if command -v flock >/dev/null; then
		exec 9>"$TOOLS/.lock"
		flock 9
	fi
	# The release Makefile's version stamps: without them `helm version` says
	# v3.22 and helm assumes Kubernetes 1.20 where no --kube-version is given
	# (install --dry-run, lint's deprecation checks).
	local k8s_minor=${K8S_VERSION#1.}
	k8s_minor=${k8s_minor%%.*}
	install_go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "-s -w \
-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor" \
		"helm-$HELM_VERSION-k8s$K8S_VERSION"
	install_go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" "-s -w" "kubeconform-$KUBECONFORM_VERSION"
	install_schemas
	# Stable names for tests and humans.
	ln -sfn "helm-$HELM_VERSION-k8s$K8S_VERSION" "$BIN/helm"
	ln -sfn "kubeconform-$KUBECONFORM_VERSION" "$BIN/kubeconform"
}

case ${1:-install} in
install)
	install_all
	;;
env)
	install_all
	echo "HELM=$BIN/helm-$HELM_VERSION-k8s$K8S_VERSION"
	echo "KUBECONFORM=$BIN/kubeconform-$KUBECONFORM_VERSION"
	echo "KUBE_SCHEMAS=$SCHEMAS"
	echo "K8S_VERSION=$K8S_VERSION"
	;;
*)
	die "usage: helm-tools.sh [install|env]"
	;;
esac
