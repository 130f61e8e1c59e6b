// Tests of the Helm chart: it is rendered with the helm binary that
// scripts/helm-tools.sh installs (REEL_HELM, else $REEL_CACHE/helm-tools/bin/helm,
// else helm on PATH) and the facts users rely on are asserted on the output.
//
// Rendering goes through the binary rather than Helm's Go SDK on purpose: the
// SDK would pull the Kubernetes client tree (~90 modules) into Reel's go.mod
// for tests only. The binary is the same code `helm install` runs.
package chart_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/registry"
	"github.com/reel-dev/reel/internal/config"
)

// kubeVersion is the Kubernetes version the chart is rendered for (the
// schemas of scripts/helm-tools.sh are generated for it too).
const kubeVersion = "1.37.2"

// secretDir is where the chart mounts Secrets.
const secretDir = "/etc/reel/secrets/"

type obj = map[string]any

func helmBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("REEL_HELM"); p != "" {
		return p
	}
	cache := os.Getenv("REEL_CACHE")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache", "reel")
		}
	}
	if p := filepath.Join(cache, "helm-tools", "bin", "helm"); cache != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	msg := "no helm binary: run bash scripts/helm-tools.sh install (or set REEL_HELM)"
	if os.Getenv("REEL_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// render runs helm template and returns the objects, or the error text.
func render(t *testing.T, args ...string) ([]obj, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), append([]string{"template", "reel", ".", "--namespace", "reel", "--kube-version", kubeVersion}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New(strings.TrimSpace(stderr.String()))
	}
	dec := yaml.NewDecoder(&stdout)
	var out []obj
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

func mustRender(t *testing.T, args ...string) []obj {
	t.Helper()
	objs, err := render(t, args...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	return objs
}

func ciValues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("ci/*-values.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("ci values files: %v %v", files, err)
	}
	return files
}

// get walks a path of map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func ofKind(objs []obj, kind string) []obj {
	var out []obj
	for _, o := range objs {
		if o["kind"] == kind {
			out = append(out, o)
		}
	}
	return out
}

func byName(t *testing.T, objs []obj, kind, name string) obj {
	t.Helper()
	for _, o := range ofKind(objs, kind) {
		if str(o, "metadata", "name") == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

func toInt(t *testing.T, v any) int {
	t.Helper()
	switch n := v.(type) {
	case int:
		return n
	case string:
		i, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("not a number: %q", n)
		}
		return i
	}
	t.Fatalf("not a number: %#v", v)
	return 0
}

func container(o obj) obj {
	c, _ := get(o, "spec", "template", "spec", "containers", 0).(obj)
	return c
}

func TestProjectorDeploymentsHaveProbesAndSecurityContext(t *testing.T) {
	for _, f := range ciValues(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			objs := mustRender(t, "-f", f)
			deps := ofKind(objs, "Deployment")
			if len(deps) == 0 {
				t.Fatal("no Deployment rendered")
			}
			for _, d := range deps {
				name := str(d, "metadata", "name")
				c := container(d)
				for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
					if got := str(c, probe, "httpGet", "path"); got != path {
						t.Errorf("%s: %s path %q, want %q", name, probe, got, path)
					}
					if got := get(c, probe, "httpGet", "port"); got != "http" {
						t.Errorf("%s: %s port %v, want the named port http", name, probe, got)
					}
				}
				if get(c, "ports", 0, "name") != "http" || get(c, "ports", 0, "containerPort") != 9464 {
					t.Errorf("%s: ports %v, want http 9464", name, get(c, "ports"))
				}
				if !reflect.DeepEqual(get(c, "args"), []any{"project", "-config", "/etc/reel/reel.yaml"}) {
					t.Errorf("%s: args %v", name, get(c, "args"))
				}
				if get(c, "resources", "requests") == nil {
					t.Errorf("%s: no resource requests", name)
				}
				// The Go memory limit follows the container's (cli/memlimit.go).
				env, _ := get(c, "env").([]any)
				if !slices.ContainsFunc(env, func(e any) bool {
					return str(e, "name") == "REEL_MEMORY_LIMIT" && str(e, "valueFrom", "resourceFieldRef", "resource") == "limits.memory"
				}) {
					t.Errorf("%s: no REEL_MEMORY_LIMIT from limits.memory in env %v", name, env)
				}
				checkSecurity(t, name, d)
				if len(str(d, "spec", "template", "metadata", "annotations", "checksum/config")) != 64 {
					t.Errorf("%s: no checksum/config annotation: config changes would not roll the pods", name)
				}
				if get(d, "spec", "template", "spec", "serviceAccountName") == nil {
					t.Errorf("%s: no serviceAccountName", name)
				}
			}
		})
	}
}

func checkSecurity(t *testing.T, name string, o obj) {
	t.Helper()
	pod := get(o, "spec", "template", "spec")
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: pod runAsNonRoot not true", name)
	}
	if uid, _ := get(pod, "securityContext", "runAsUser").(int); uid == 0 {
		t.Errorf("%s: pod runAsUser %v", name, get(pod, "securityContext", "runAsUser"))
	}
	if get(pod, "automountServiceAccountToken") != false {
		t.Errorf("%s: service account token mounted", name)
	}
	for i := range get(pod, "containers").([]any) {
		sc := get(pod, "containers", i, "securityContext")
		want := map[string]any{
			"readOnlyRootFilesystem":   true,
			"allowPrivilegeEscalation": false,
			"runAsNonRoot":             true,
		}
		for k, v := range want {
			if get(sc, k) != v {
				t.Errorf("%s container %d: securityContext.%s = %v, want %v", name, i, k, get(sc, k), v)
			}
		}
		if !reflect.DeepEqual(get(sc, "capabilities", "drop"), []any{"ALL"}) {
			t.Errorf("%s container %d: capabilities.drop = %v, want [ALL]", name, i, get(sc, "capabilities", "drop"))
		}
		if str(sc, "seccompProfile", "type") != "RuntimeDefault" {
			t.Errorf("%s container %d: seccompProfile %v", name, i, get(sc, "seccompProfile"))
		}
	}
	// A read-only root needs a writable /tmp.
	mounts, _ := get(pod, "containers", 0, "volumeMounts").([]any)
	if !slices.ContainsFunc(mounts, func(m any) bool { return str(m, "mountPath") == "/tmp" }) {
		t.Errorf("%s: no /tmp mount", name)
	}
}

// TestRenderedConfigIsValid parses every rendered reel.yaml with Reel's own
// config loader (unknown keys fail) and validator.
func TestRenderedConfigIsValid(t *testing.T) {
	for _, f := range ciValues(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			objs := mustRender(t, "-f", f)
			cm := byName(t, objs, "ConfigMap", "reel")
			data := get(cm, "data").(obj)
			if _, ok := data["reel.yaml"]; !ok {
				t.Fatal("no reel.yaml in the ConfigMap")
			}
			// Validate reads the secret files: stand them up under a temp dir.
			secrets := t.TempDir()
			mounted := mountConfigMaps(t, objs)
			for key, v := range data {
				text := mounted.Replace(strings.ReplaceAll(v.(string), secretDir, secrets+"/"))
				for _, m := range regexp.MustCompile(regexp.QuoteMeta(secrets)+`/[^\s"']+`).FindAllString(text, -1) {
					if err := os.MkdirAll(filepath.Dir(m), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(m, []byte("x\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				cfg, err := stockParse([]byte(text), nil)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				if err := cfg.Validate(); err != nil {
					t.Errorf("%s: %v", key, err)
				}
			}
			// Each group's Deployment reads its own key with its projections.
			for _, d := range ofKind(objs, "Deployment") {
				vols, _ := get(d, "spec", "template", "spec", "volumes").([]any)
				var key string
				for _, v := range vols {
					if str(v, "name") == "config" {
						key = str(v, "configMap", "items", 0, "key")
					}
				}
				cfg, err := stockParse([]byte(data[key].(string)), nil)
				if err != nil {
					t.Fatalf("%s: key %q: %v", str(d, "metadata", "name"), key, err)
				}
				want := strings.Split(str(d, "metadata", "annotations", "reel.dev/projections"), ",")
				if !slices.Equal(cfg.Projector.Projections, want) {
					t.Errorf("%s: config projections %v, want %v", str(d, "metadata", "name"), cfg.Projector.Projections, want)
				}
			}
		})
	}
}

// secretish are values that must never be inlined into a ConfigMap.
var secretish = regexp.MustCompile(`(?i)(password|token|secret)\s*:\s*["']?[^"'\s/]+|BEGIN [A-Z ]*PRIVATE KEY|://[^/\s:@]+:[^/\s@]+@`)

func TestSecretsAreReferencedNotInlined(t *testing.T) {
	objs := mustRender(t, "-f", "ci/tls-sasl-values.yaml")
	if s := ofKind(objs, "Secret"); len(s) > 0 {
		t.Errorf("the chart rendered %d Secret(s); it must only reference existing ones", len(s))
	}
	for _, f := range ciValues(t) {
		for _, cm := range ofKind(mustRender(t, "-f", f), "ConfigMap") {
			for key, v := range get(cm, "data").(obj) {
				for _, line := range strings.Split(v.(string), "\n") {
					if secretish.MatchString(line) && !strings.Contains(line, "File:") {
						t.Errorf("%s: ConfigMap %s key %s has a secret-looking line: %q", f, str(cm, "metadata", "name"), key, line)
					}
				}
			}
		}
	}

	cfg, err := stockParse([]byte(str(byName(t, objs, "ConfigMap", "reel"), "data", "reel.yaml")), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every file the config names must be mounted from the right Secret and key.
	want := map[string][2]string{ // path → secret, key
		cfg.Kafka.TLS.CAFile:            {"reel-kafka-tls", "ca.crt"},
		cfg.Kafka.TLS.CertFile:          {"reel-kafka-tls", "tls.crt"},
		cfg.Kafka.TLS.KeyFile:           {"reel-kafka-tls", "tls.key"},
		cfg.Kafka.SASL.PasswordFile:     {"reel-kafka-sasl", "password"},
		cfg.SchemaRegistry.PasswordFile: {"reel-schema-registry", "password"},
		cfg.ClickHouse.PasswordFile:     {"reel-clickhouse", "password"},
		cfg.ClickHouse.TLS.CAFile:       {"reel-clickhouse-ca", "ca.crt"},
		cfg.HTTP.AdminTokenFile:         {"reel-admin", "token"},
	}
	if len(want) != 8 || want[""] != [2]string{} {
		t.Fatalf("a secret path is empty or shared in the rendered config: %+v", cfg)
	}
	if cfg.Kafka.SASL.Mechanism != "SCRAM-SHA-512" || !cfg.Kafka.TLS.Enabled || !cfg.ClickHouse.TLS.Enabled {
		t.Errorf("security settings not rendered: sasl %q kafka tls %v clickhouse tls %v", cfg.Kafka.SASL.Mechanism, cfg.Kafka.TLS.Enabled, cfg.ClickHouse.TLS.Enabled)
	}
	for _, d := range append(ofKind(objs, "Deployment"), ofKind(objs, "Job")...) {
		name := str(d, "metadata", "name")
		if strings.HasSuffix(name, "schema-registration") {
			continue // env from secretKeyRef; checked in TestSchemaRegistrationHook
		}
		mounted := mountedSecretFiles(d)
		for path, sk := range want {
			if got := mounted[path]; got != sk {
				t.Errorf("%s: %s is mounted from %v, want Secret %s key %s", name, path, got, sk[0], sk[1])
			}
		}
		for _, e := range allEnv(d) {
			n := strings.ToUpper(str(e, "name"))
			if (strings.Contains(n, "PASSWORD") || strings.Contains(n, "TOKEN") || strings.Contains(n, "SECRET")) && get(e, "value") != nil {
				t.Errorf("%s: env %s has an inline value", name, n)
			}
		}
	}
}

// mountedSecretFiles maps file paths inside the first container to (Secret, key).
func mountedSecretFiles(o obj) map[string][2]string {
	pod := get(o, "spec", "template", "spec")
	vols := map[string]obj{}
	for _, v := range get(pod, "volumes").([]any) {
		vols[str(v, "name")] = v.(obj)
	}
	out := map[string][2]string{}
	for _, m := range get(pod, "containers", 0, "volumeMounts").([]any) {
		v := vols[str(m, "name")]
		secret := str(v, "secret", "secretName")
		if secret == "" {
			continue
		}
		if get(m, "readOnly") != true {
			out[str(m, "mountPath")+"/<writable>"] = [2]string{secret, ""}
		}
		for _, it := range get(v, "secret", "items").([]any) {
			out[str(m, "mountPath")+"/"+str(it, "path")] = [2]string{secret, str(it, "key")}
		}
	}
	return out
}

func allEnv(o obj) []any {
	var env []any
	for _, c := range get(o, "spec", "template", "spec", "containers").([]any) {
		if e, ok := get(c, "env").([]any); ok {
			env = append(env, e...)
		}
	}
	return env
}

func TestReplicasBoundedByPartitions(t *testing.T) {
	for _, f := range ciValues(t) {
		objs := mustRender(t, "-f", f)
		parts := map[string]int{}
		for _, d := range ofKind(objs, "Deployment") {
			name := str(d, "metadata", "name")
			p := toInt(t, get(d, "metadata", "annotations", "reel.dev/partitions"))
			parts[name] = p
			if r := get(d, "spec", "replicas"); r != nil && toInt(t, r) > p {
				t.Errorf("%s: %s replicas %v > partitions %d", f, name, r, p)
			}
		}
		for _, h := range ofKind(objs, "HorizontalPodAutoscaler") {
			target := str(h, "spec", "scaleTargetRef", "name")
			p, ok := parts[target]
			if !ok {
				t.Fatalf("%s: HPA targets unknown Deployment %s", f, target)
			}
			if max := toInt(t, get(h, "spec", "maxReplicas")); max > p || max < 1 {
				t.Errorf("%s: HPA %s maxReplicas %d, partitions %d", f, target, max, p)
			}
			if str(h, "spec", "metrics", 0, "external", "metric", "name") != "reel_projector_lag_offsets" {
				t.Errorf("%s: HPA %s does not scale on reel_projector_lag_offsets", f, target)
			}
			if _, fixed := byName(t, objs, "Deployment", target)["spec"].(obj)["replicas"]; fixed {
				t.Errorf("%s: %s has both an HPA and fixed replicas", f, target)
			}
		}
	}

	_, err := render(t, "--set", "groups[0].name=g,groups[0].projections={seats},groups[0].partitions=3,groups[0].replicas=4")
	if err == nil || !strings.Contains(err.Error(), "replicas 4 > partitions 3") {
		t.Errorf("replicas above partitions: err = %v", err)
	}
	_, err = render(t, "--set", "autoscaling.enabled=true,autoscaling.maxReplicas=20")
	if err == nil || !strings.Contains(err.Error(), "autoscaling.maxReplicas 20 > partitions 12") {
		t.Errorf("HPA above partitions: err = %v", err)
	}
	// maxReplicas 0 means the partition count.
	objs := mustRender(t, "--set", "autoscaling.enabled=true")
	for _, h := range ofKind(objs, "HorizontalPodAutoscaler") {
		if toInt(t, get(h, "spec", "maxReplicas")) != 12 {
			t.Errorf("HPA %s maxReplicas %v, want the partitions (12)", str(h, "metadata", "name"), get(h, "spec", "maxReplicas"))
		}
	}
}

func TestPodDisruptionBudgetPerGroup(t *testing.T) {
	objs := mustRender(t)
	deps, pdbs := ofKind(objs, "Deployment"), ofKind(objs, "PodDisruptionBudget")
	if len(deps) != 3 || len(pdbs) != len(deps) {
		t.Fatalf("%d Deployments, %d PDBs", len(deps), len(pdbs))
	}
	for _, d := range deps {
		p := byName(t, objs, "PodDisruptionBudget", str(d, "metadata", "name"))
		if !reflect.DeepEqual(get(p, "spec", "selector", "matchLabels"), get(d, "spec", "selector", "matchLabels")) {
			t.Errorf("PDB %s selects %v, Deployment %v", str(p, "metadata", "name"), get(p, "spec", "selector"), get(d, "spec", "selector"))
		}
	}
}

func TestRebuildJobPerEntry(t *testing.T) {
	objs := mustRender(t, "--set", "rebuilds[0].projection=orders")
	jobs := ofKind(objs, "Job")
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs for one rebuild entry", len(jobs))
	}
	j := jobs[0]
	want := []any{"rebuild", "orders", "-config", "/etc/reel/reel.yaml", "-from", "earliest", "-cutover", "auto", "-grace", "24h", "-metrics-listen", ":9464"}
	if got := get(container(j), "args"); !reflect.DeepEqual(got, want) {
		t.Errorf("args %v, want %v", got, want)
	}
	if get(j, "spec", "template", "spec", "restartPolicy") != "Never" {
		t.Errorf("restartPolicy %v", get(j, "spec", "template", "spec", "restartPolicy"))
	}
	if get(j, "metadata", "annotations", "helm.sh/hook") != nil {
		t.Error("a rebuild Job must not be a hook: helm would wait hours for it")
	}
	checkSecurity(t, str(j, "metadata", "name"), j)

	// The name is stable for the same entry and new for a changed one.
	again := ofKind(mustRender(t, "--set", "rebuilds[0].projection=orders"), "Job")[0]
	other := ofKind(mustRender(t, "--set", "rebuilds[0].projection=orders,rebuilds[0].id=2"), "Job")[0]
	if str(again, "metadata", "name") != str(j, "metadata", "name") {
		t.Error("the same rebuild entry got a new Job name: an upgrade would run it again")
	}
	if str(other, "metadata", "name") == str(j, "metadata", "name") {
		t.Error("a changed rebuild entry kept its Job name: the immutable Job could not be updated")
	}

	objs = mustRender(t, "-f", "ci/rebuild-values.yaml")
	jobs = ofKind(objs, "Job")
	if len(jobs) != 2 {
		t.Fatalf("%d Jobs for two rebuild entries", len(jobs))
	}
	var seats obj
	for _, j := range jobs {
		if get(j, "metadata", "labels", "reel.dev/projection") == "seats" {
			seats = j
		}
	}
	args := get(container(seats), "args").([]any)
	for _, w := range [][]any{{"-from", "2026-01-01T00:00:00Z"}, {"-cutover", "manual"}, {"-max-lag", "1000"}, {"-grace", "48h"}} {
		i := slices.Index(args, w[0])
		if i < 0 || i+1 >= len(args) || args[i+1] != w[1] {
			t.Errorf("seats rebuild args %v lack %v", args, w)
		}
	}
	if !slices.Contains(args, any("-snapshot")) || slices.Contains(args, any("-in-place")) {
		t.Errorf("seats rebuild args %v: want -snapshot, no -in-place", args)
	}
	if got := get(seats, "spec", "activeDeadlineSeconds"); got != 86400 {
		t.Errorf("activeDeadlineSeconds %v", got)
	}
	if _, err := render(t, "--set", "rebuilds[0].projection=ordres"); err == nil || !strings.Contains(err.Error(), `unknown projection "ordres"`) {
		t.Errorf("unknown rebuild projection: err = %v", err)
	}
}

func TestSchemaRegistrationHook(t *testing.T) {
	if jobs := ofKind(mustRender(t), "Job"); len(jobs) != 0 {
		t.Errorf("registry-free defaults rendered %d Jobs, want no schema-registration Job", len(jobs))
	}
	objs := mustRender(t, "-f", "ci/tls-sasl-values.yaml")
	j := byName(t, objs, "Job", "reel-schema-registration")
	ann := get(j, "metadata", "annotations").(obj)
	if ann["helm.sh/hook"] != "pre-install,pre-upgrade" {
		t.Errorf("helm.sh/hook = %v", ann["helm.sh/hook"])
	}
	if !strings.Contains(ann["helm.sh/hook-delete-policy"].(string), "before-hook-creation") {
		t.Errorf("helm.sh/hook-delete-policy = %v", ann["helm.sh/hook-delete-policy"])
	}
	if !reflect.DeepEqual(get(container(j), "args"), []any{"schemas", "register"}) {
		t.Errorf("args %v", get(container(j), "args"))
	}
	// Hooks run before the chart's ServiceAccount and ConfigMap exist.
	if get(j, "spec", "template", "spec", "serviceAccountName") != nil {
		t.Error("the hook Job uses a ServiceAccount the release has not created yet")
	}
	for _, v := range get(j, "spec", "template", "spec", "volumes").([]any) {
		if get(v, "configMap") != nil {
			t.Error("the hook Job mounts a ConfigMap the release has not created yet")
		}
	}
	env := map[string]any{}
	for _, e := range allEnv(j) {
		env[str(e, "name")] = e
	}
	if str(env["REEL_SCHEMA_REGISTRY"], "value") != "https://schema-registry.kafka:8081" {
		t.Errorf("REEL_SCHEMA_REGISTRY = %v", env["REEL_SCHEMA_REGISTRY"])
	}
	if str(env["REEL_SCHEMA_REGISTRY_PASSWORD"], "valueFrom", "secretKeyRef", "name") != "reel-schema-registry" {
		t.Errorf("REEL_SCHEMA_REGISTRY_PASSWORD = %v, want a secretKeyRef", env["REEL_SCHEMA_REGISTRY_PASSWORD"])
	}
	checkSecurity(t, "schema-registration", j)
}

func TestMonitoringToggles(t *testing.T) {
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if n := len(ofKind(mustRender(t), kind)); n != 0 {
			t.Errorf("defaults render %d %s: the CRDs must not be required", n, kind)
		}
	}
	objs := mustRender(t, "-f", "ci/production-values.yaml")
	rule := ofKind(objs, "PrometheusRule")
	if len(rule) != 1 {
		t.Fatalf("%d PrometheusRules", len(rule))
	}
	src, err := os.ReadFile("files/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file obj
	if err := yaml.Unmarshal(src, &file); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(get(rule[0], "spec"), file) {
		t.Error("PrometheusRule spec differs from files/alerts.yml")
	}
	sm := ofKind(objs, "ServiceMonitor")
	if len(sm) != 1 || get(sm[0], "spec", "endpoints", 0, "port") != "http" || get(sm[0], "spec", "jobLabel") != "reel.dev/job" {
		t.Fatalf("ServiceMonitor: %v", sm)
	}
	svc := byName(t, objs, "Service", "reel-metrics")
	// job="reel" in the alert rules comes from this label.
	if get(svc, "metadata", "labels", "reel.dev/job") != "reel" {
		t.Error("metrics Service lacks reel.dev/job: reel")
	}
	for k, v := range get(sm[0], "spec", "selector", "matchLabels").(obj) {
		if get(svc, "metadata", "labels", k) != v {
			t.Errorf("ServiceMonitor selects %s=%v, the Service has %v", k, v, get(svc, "metadata", "labels", k))
		}
	}
	if len(ofKind(objs, "ConfigMap")) != 2 {
		t.Error("grafanaDashboard.enabled did not render the dashboard ConfigMap")
	}
}

func TestProjectionCatalogMatchesRegistry(t *testing.T) {
	b, err := os.ReadFile("values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ProjectionCatalog []string `yaml:"projectionCatalog"`
		Groups            []struct {
			Projections []string `yaml:"projections"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range registry.All() {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	catalog := slices.Sorted(slices.Values(v.ProjectionCatalog))
	if !slices.Equal(catalog, names) {
		t.Errorf("values.yaml projectionCatalog %v, the binary's registry %v", catalog, names)
	}
	var grouped []string
	for _, g := range v.Groups {
		grouped = append(grouped, g.Projections...)
	}
	sort.Strings(grouped)
	if !slices.Equal(grouped, names) {
		t.Errorf("the default groups run %v, want every projection once: %v", grouped, names)
	}
}

// TestNotesExplainQueries renders NOTES.txt. helm template skips NOTES and
// helm install --dry-run needs a cluster, so a copy of the chart renders the
// notes into a ConfigMap through the same engine (tpl with every helper).
func TestNotesExplainQueries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reel")
	if err := os.CopyFS(dir, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "templates", "NOTES.txt"), filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal(err)
	}
	probe := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get \"notes.txt\") . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-notes.yaml"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, values := range []string{"values.yaml", "ci/rebuild-values.yaml"} {
		cmd := exec.Command(helmBin(t), "template", "reel", dir, "--namespace", "reel", "--kube-version", kubeVersion,
			"-f", filepath.Join(dir, values), "--show-only", "templates/zz-notes.yaml")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", values, err, out)
		}
		var cm obj
		if err := yaml.Unmarshal(out, &cm); err != nil {
			t.Fatal(err)
		}
		notes := str(cm, "data", "notes")
		for _, want := range []string{"SELECT * FROM orders_current WHERE order_id", "SELECT * FROM daily_sales", "SELECT * FROM seats_available",
			"reel status", "projector_lag_offsets", "rebuilds[0].projection=orders", "reel rollback", "reel-seats"} {
			if !strings.Contains(notes, want) {
				t.Errorf("%s: NOTES lack %q:\n%s", values, want, notes)
			}
		}
		if values != "values.yaml" && !strings.Contains(notes, "Requested now: rebuild of seats from 2026-01-01T00:00:00Z (cut-over manual)") {
			t.Errorf("NOTES do not list the requested rebuilds:\n%s", notes)
		}
	}
}

// mountConfigMaps writes the rendered catalog and projections ConfigMaps to
// temp dirs, as the kubelet mounts them, and returns a replacer from the
// pod's paths to those dirs.
func mountConfigMaps(t *testing.T, objs []obj) *strings.Replacer {
	t.Helper()
	var pairs []string
	for _, m := range []struct{ name, path string }{{"reel-catalog", "/etc/reel/catalog"}, {"reel-projections", "/etc/reel/projections"}} {
		for _, o := range ofKind(objs, "ConfigMap") {
			if str(o, "metadata", "name") != m.name {
				continue
			}
			dir := t.TempDir()
			for k, v := range get(o, "data").(obj) {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(v.(string)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pairs = append(pairs, m.path, dir)
		}
	}
	return strings.NewReplacer(pairs...)
}

// TestDeclaredProjectionFromConfigMaps renders a team's catalog and
// declared projection (ci/declared-values.yaml), then loads the rendered
// ConfigMaps through the group's rendered reel.yaml with the loader `reel
// project` uses (config.Parse, Validate, SelectProjections).
func TestDeclaredProjectionFromConfigMaps(t *testing.T) {
	objs := mustRender(t, "-f", "ci/declared-values.yaml")
	d := byName(t, objs, "Deployment", "reel-parcels")
	pod := get(d, "spec", "template", "spec")
	mounts := map[string]string{}
	for _, m := range get(container(d), "volumeMounts").([]any) {
		mounts[str(m, "name")] = str(m, "mountPath")
	}
	vols := map[string]string{}
	for _, v := range get(pod, "volumes").([]any) {
		vols[str(v, "name")] = str(v, "configMap", "name")
	}
	if mounts["catalog"] != "/etc/reel/catalog" || mounts["projections"] != "/etc/reel/projections" ||
		vols["catalog"] != "reel-catalog" || vols["projections"] != "reel-projections" {
		t.Fatalf("mounts %v, volumes %v: want the catalog and projections ConfigMaps under /etc/reel", mounts, vols)
	}
	cm := byName(t, objs, "ConfigMap", "reel")
	text := get(cm, "data", "group-parcels.yaml").(string)
	cfg, err := stockParse([]byte(mountConfigMaps(t, objs).Replace(text)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("rendered config: %v", err)
	}
	cat, err := cfg.LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := cfg.SelectProjections(cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Name != "parcels" || len(ps[0].Tables) != 2 || len(ps[0].Views) != 1 ||
		!slices.Equal(ps[0].Topics, []string{"shipping.parcels"}) || ps[0].Apply == nil {
		t.Fatalf("loaded %+v; want parcels on shipping.parcels with 2 tables and 1 view", ps)
	}

	// A broken projection fails validation with its file, line and column.
	bad := mountConfigMaps(t, mustRender(t, "-f", "ci/declared-values.yaml", "--set-string",
		"projections.files.parcels\\.yaml=name: parcels\ntables: []\non: {com.acme.shipping.Nope: ignore}\n"))
	cfg, err = stockParse([]byte(bad.Replace(text)), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "parcels.yaml:3:6: on com.acme.shipping.Nope") {
		t.Fatalf("broken projection: %v", err)
	}

	// Groups may name only projections the chart knows of.
	if _, err := render(t, "-f", "ci/declared-values.yaml", "--set", "groups[0].projections[0]=parcel"); err == nil ||
		!strings.Contains(err.Error(), `unknown projection "parcel"`) || !strings.Contains(err.Error(), "parcels") {
		t.Fatalf("unknown projection in a group: %v", err)
	}
}

// stockParse parses a rendered config as the stock image does: with the
// demo's Go projections compiled in (cmd/reel).
func stockParse(b []byte, getenv func(string) string) (*config.Config, error) {
	c, err := config.Parse(b, getenv)
	if c != nil {
		c.GoProjections, c.Bindings, c.ProgramCatalog = registry.All(), events.Bindings(), events.FS()
	}
	return c, err
}

// The chart's projector values are reel.yaml's projector keys, one for
// one: the schema allows each key of config.Projector (the runtime's
// settings inline), values.yaml sets each but projections (a group's),
// and every rendered reel.yaml carries them all.
func TestProjectorKeysAreConfigKeys(t *testing.T) {
	var keys []string
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == ",inline" {
				walk(f.Type)
			} else if tag != "" && tag != "-" {
				keys = append(keys, tag)
			}
		}
	}
	walk(reflect.TypeFor[config.Projector]())
	sort.Strings(keys)

	b, err := os.ReadFile("values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	inSchema := slices.Sorted(maps.Keys(schema.Properties["projector"].Properties))
	want := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "projections" })
	if !slices.Equal(inSchema, want) {
		t.Errorf("values.schema.json projector keys %v, want config's %v", inSchema, want)
	}
	b, err = os.ReadFile("values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Projector map[string]any `yaml:"projector"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(values.Projector)); !slices.Equal(got, want) {
		t.Errorf("values.yaml projector keys %v, want %v", got, want)
	}

	cm := byName(t, mustRender(t), "ConfigMap", "reel")
	var rendered struct {
		Projector map[string]any `yaml:"projector"`
	}
	if err := yaml.Unmarshal([]byte(get(cm, "data", "reel.yaml").(string)), &rendered); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(rendered.Projector)); !slices.Equal(got, keys) {
		t.Errorf("rendered reel.yaml projector keys %v, want %v", got, keys)
	}
}
