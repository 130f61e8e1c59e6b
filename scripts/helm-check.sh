#!/usr/bin/env bash
# Offline validation of the Helm chart (no cluster needed):
#
#   1. helm lint --strict, for the defaults and every helm/reel/ci/*-values.yaml
#   2. helm template for each ci values file, then kubeconform -strict on every
#      rendered manifest against Kubernetes $K8S_VERSION schemas (generated
#      offline, see scripts/helm-tools.sh) plus helm/crd-schemas for
#      ServiceMonitor and PrometheusRule; a kind without a schema fails
#   3. wrong values must fail: values.schema.json and the chart's own checks
#      are asserted on helm/testdata/invalid/*.yaml (first line: "# expect: <text>")
#   4. go test of the chart and deploy packages (skip with --no-go-tests, as
#      scripts/test.sh does: its go test ./... runs them)
#
#   bash scripts/helm-check.sh [--no-go-tests]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CHART=helm/reel
go_tests=1
[[ ${1:-} == --no-go-tests ]] && go_tests=

die() {
	echo "helm-check.sh: error: $*" >&2
	exit 1
}
say() { echo "helm-check.sh: $*" >&2; }

tools_env=$(bash scripts/helm-tools.sh env) || die "scripts/helm-tools.sh failed"
while IFS='=' read -r k v; do
	case $k in HELM | KUBECONFORM | KUBE_SCHEMAS | K8S_VERSION) printf -v "$k" '%s' "$v" ;; esac
done <<<"$tools_env"
[[ -x ${HELM:-} && -x ${KUBECONFORM:-} && -d ${KUBE_SCHEMAS:-} ]] || die "helm-tools.sh env gave HELM=$HELM KUBECONFORM=$KUBECONFORM KUBE_SCHEMAS=$KUBE_SCHEMAS"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=()

shopt -s nullglob
values=("$CHART"/ci/*-values.yaml)
((${#values[@]} >= 4)) || die "expected the ci values files in $CHART/ci (minimal, production, tls-sasl, rebuild)"

say "helm lint (Kubernetes $K8S_VERSION)"
if ! "$HELM" lint --strict --kube-version "$K8S_VERSION" "$CHART" >"$out/lint.log" 2>&1; then
	cat "$out/lint.log" >&2
	failed+=("lint")
fi
for f in "${values[@]}"; do
	if ! "$HELM" lint --strict --kube-version "$K8S_VERSION" -f "$f" "$CHART" >"$out/lint.log" 2>&1; then
		cat "$out/lint.log" >&2
		failed+=("lint $f")
	fi
done

for f in "${values[@]}"; do
	name=$(basename "$f" -values.yaml)
	manifest=$out/$name.yaml
	if ! "$HELM" template reel "$CHART" --namespace reel --kube-version "$K8S_VERSION" -f "$f" >"$manifest" 2>"$out/err"; then
		cat "$out/err" >&2
		failed+=("template $name")
		continue
	fi
	# Kubernetes kinds: generated schemas; CRDs: helm/crd-schemas (ours).
	if "$KUBECONFORM" -strict -summary -output text \
		-kubernetes-version "$K8S_VERSION" \
		-schema-location "$KUBE_SCHEMAS" \
		-schema-location "$ROOT/helm/crd-schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
		"$manifest" >"$out/kc.log" 2>&1; then
		say "$name: $(tail -1 "$out/kc.log")"
	else
		cat "$out/kc.log" >&2
		failed+=("kubeconform $name")
	fi
done

# Wrong values must be refused, each with its message.
for f in helm/testdata/invalid/*.yaml; do
	expect=$(sed -n '1s/^# expect: //p' "$f")
	[[ -n $expect ]] || die "$f: the first line must be '# expect: <text of the error>'"
	if "$HELM" template reel "$CHART" --kube-version "$K8S_VERSION" -f "$f" >/dev/null 2>"$out/err"; then
		say "$f: rendered, but must fail with: $expect"
		failed+=("invalid $(basename "$f")")
	elif ! grep -qF -- "$expect" "$out/err"; then
		say "$f: failed as it must, but without '$expect':"
		cat "$out/err" >&2
		failed+=("invalid $(basename "$f")")
	else
		say "$(basename "$f"): refused as expected ($expect)"
	fi
done

if [[ -n $go_tests ]]; then
	say "go test ./helm/... ./deploy/..."
	REEL_HELM=$HELM go test -count=1 ./helm/... ./deploy/... || failed+=("go test")
fi

if ((${#failed[@]} > 0)); then
	die "FAILED: ${failed[*]}"
fi
say "chart valid: lint, ${#values[@]} values files rendered and validated against Kubernetes $K8S_VERSION schemas, invalid values refused"
