// Tests of the deployment kit that need no Docker: the compose file's
// structure, the alert rules and the dashboard, and that every metric they
// name is one the binary exports.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/rebuild"
)

// recorder registers nothing; it keeps the collectors so their descriptors
// can be listed even for vectors without children yet.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return true }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// exported lists the metric names the binary registers: the projector
// runtime's, the rebuild's and the supervisor's lag collector (the same
// constructors `reel project` and `reel rebuild` call), plus Prometheus' up.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	r := &recorder{}
	projectors.NewMetrics(r)
	rebuild.NewMetrics(r)
	cfg := config.Default()
	cfg.ProgramCatalog = events.FS() // the stock image's (cmd/reel)
	if _, err := app.NewSupervisor(&cfg, nil, nil, nil, r, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("NewSupervisor: %v", err)
	}
	names := map[string]bool{"up": true}
	for _, c := range r.cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names[m[1]] = true
		}
	}
	return names
}

var metricRef = regexp.MustCompile(`\b(reel_[a-z0-9_]+|up)\b`)

// referenced returns the metric names an expression uses.
func referenced(expr string) []string { return metricRef.FindAllString(expr, -1) }

// known reports whether m is exported, a histogram's series included.
func known(have map[string]bool, m string) bool {
	if have[m] {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(m, suf); ok && have[b] {
			return true
		}
	}
	return false
}

type rule struct {
	Record, Alert, Expr, For string
	Labels, Annotations      map[string]string
}

type rules struct {
	Groups []struct {
		Name  string
		Rules []rule
	}
}

func loadRules(t *testing.T) rules {
	t.Helper()
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var r rules
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	return r
}

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana/dashboards/reel.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string
		Panels     []map[string]any
		Templating struct{ List []map[string]any }
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("reel.json: %v", err)
	}
	if d.UID == "" {
		t.Error("dashboard has no uid")
	}
	var exprs []string
	ids := map[float64]bool{}
	for _, p := range d.Panels {
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel id %v used twice", id)
		}
		ids[id] = true
		if p["type"] == "row" {
			continue
		}
		ts, _ := p["targets"].([]any)
		if len(ts) == 0 {
			t.Errorf("panel %q has no query", p["title"])
		}
		for _, x := range ts {
			e, _ := x.(map[string]any)["expr"].(string)
			exprs = append(exprs, e)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v["definition"].(string); ok {
			exprs = append(exprs, q)
		}
	}
	return exprs
}

// TestMetricsExist: every metric the dashboard and the alert rules name is
// exported by the binary.
func TestMetricsExist(t *testing.T) {
	have := exported(t)
	check := func(where, expr string) {
		for _, m := range referenced(expr) {
			if !known(have, m) {
				t.Errorf("%s uses %s, which the binary does not export", where, m)
			}
		}
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			check("alerts.yml "+r.Alert+r.Record, r.Expr)
		}
	}
	for i, e := range dashboardExprs(t) {
		check("reel.json query "+string(rune('A'+i%26)), e)
	}
	names := make([]string, 0, len(have))
	for n := range have {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("exported: %s", strings.Join(names, " "))
}

// TestDashboardCoversTheBasics: lag, throughput, insert latency, parked
// events and rebuild progress each have a panel.
func TestDashboardCoversTheBasics(t *testing.T) {
	all := strings.Join(dashboardExprs(t), "\n")
	for _, m := range []string{"reel_projector_lag_offsets", "reel_projector_lag_seconds", "reel_projector_events_total",
		"reel_projector_insert_duration_seconds_bucket", "reel_projector_parked_events_total", "reel_rebuild_progress_ratio",
		"reel_rebuild_eta_seconds", "reel_rebuild_events_per_second"} {
		if !strings.Contains(all, m) {
			t.Errorf("the dashboard has no panel on %s", m)
		}
	}
}

func TestAlertRules(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if (r.Alert == "") == (r.Record == "") || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: a rule needs exactly one of alert/record and an expr", name)
			}
			if seen[name] {
				t.Errorf("%s defined twice", name)
			}
			seen[name] = true
			if r.Alert == "" {
				continue
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q", name, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description are required", name)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses", name)
			}
		}
	}
	for _, want := range []string{"ReelProjectorDown", "ReelLagGrowing", "ReelEventsParked", "ReelRebuildStalled"} {
		if !seen[want] {
			t.Errorf("alert %s missing", want)
		}
	}
}

// TestChartCopiesAreIdentical: the chart ships the same rules and dashboard
// (Helm cannot read files outside the chart).
func TestChartCopiesAreIdentical(t *testing.T) {
	for src, cp := range map[string]string{
		"prometheus/alerts.yml":        "../helm/reel/files/alerts.yml",
		"grafana/dashboards/reel.json": "../helm/reel/files/dashboard.json",
	} {
		a, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(cp)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from deploy/%s: cp deploy/%s %s", cp, src, src, strings.TrimPrefix(cp, "../"))
		}
	}
}

func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string
			Build       any
			Healthcheck struct {
				Test    []string
				Disable bool
			}
			DependsOn map[string]struct{ Condition string } `yaml:"depends_on"`
			Volumes   []string
			ReadOnly  bool `yaml:"read_only"`
			User      string
			CapDrop   []string `yaml:"cap_drop"`
		}
		Volumes map[string]any
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, want := range []string{"kafka", "clickhouse", "projector", "seats-service", "shop-service", "prometheus", "grafana"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	pinned := regexp.MustCompile(`^[a-z0-9./_-]+:v?[0-9][0-9A-Za-z.\-]*$`)
	for name, s := range c.Services {
		if s.Healthcheck.Disable || len(s.Healthcheck.Test) < 2 {
			t.Errorf("%s: no healthcheck", name)
		}
		switch {
		case s.Build != nil:
			if s.User == "" || s.User == "0" || s.User == "root" || !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("%s: Reel containers run as non-root, read-only, with no capabilities", name)
			}
		case !pinned.MatchString(s.Image):
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
		for dep, d := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
			}
			if d.Condition == "service_healthy" && len(c.Services[dep].Healthcheck.Test) == 0 {
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.FromSlash(src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s mounts undeclared volume %s", name, src)
			}
		}
	}
	// The compose projector's config is a valid Reel config.
	cfgText, err := os.ReadFile("compose/reel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(cfgText, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The stock image's catalog, as cmd/reel passes it.
	cfg.ProgramCatalog = events.FS()
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

// The stock image, and the model a team's image follows (the library
// example): static, distroless, nonroot, multi-stage, the binary where
// the chart runs it.
func TestDockerfile(t *testing.T) {
	for file, build := range map[string]string{"Dockerfile": "./cmd/reel", "../examples/go-projection/Dockerfile": "cd examples/go-projection"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{"CGO_ENABLED=0", "FROM gcr.io/distroless/static", "USER 65532:65532", build, "AS build",
			"-o /out/reel", "COPY --from=build /out/reel /usr/local/bin/reel"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q", file, want)
			}
		}
		if n := strings.Count(s, "\nFROM "); n < 2 {
			t.Errorf("%s has %d stages, want a multi-stage build", file, n)
		}
	}
}
