package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reel projections check: OK for the declared demo and a team's own
// catalog; every error of a broken file with file:line:column, non-zero.
func TestProjectionsCheck(t *testing.T) {
	var out, errw bytes.Buffer
	if err := demoProgram().checkProjections(&out, &errw, "../examples/projections", "", false); err != nil {
		t.Fatalf("declared demo: %v\n%s", err, errw.String())
	}
	for _, n := range []string{"event_log: OK", "orders: OK", "sales: OK", "seats: OK", "order_saga: OK", "5 projection(s)"} {
		if !strings.Contains(out.String(), n) {
			t.Errorf("output lacks %q:\n%s", n, out.String())
		}
	}
	out.Reset()
	if err := demoProgram().checkProjections(&out, &errw, "../projectors/declare/testdata/acme", "../schemas/testdata/acme", true); err != nil {
		t.Fatalf("acme: %v\n%s", err, errw.String())
	}
	if !strings.Contains(out.String(), "acme_orders\tv1\ttopics acme.orders\ttables acme_orders,acme_shipments") {
		t.Errorf("list: %s", out.String())
	}

	dir := t.TempDir()
	bad := "name: p\ntables:\n  - {name: t, kind: state, key: id, columns: {id: String, n: Int64}}\non:\n  shop.OrderPlaced:\n    set: {n: event.currency}\n  shop.Nope: ignore\n"
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	errw.Reset()
	err := demoProgram().checkProjections(&out, &errw, dir, "", false)
	if err == nil || !strings.Contains(err.Error(), "2 error(s)") {
		t.Fatalf("broken: %v", err)
	}
	for _, want := range []string{
		filepath.Join(dir, "p.yaml") + ":6:14: set n: the expression is string, want int",
		filepath.Join(dir, "p.yaml") + `:7:3: on shop.Nope: the catalog (embedded catalog) has no event type "shop.Nope"`,
	} {
		if !strings.Contains(errw.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errw.String())
		}
	}
	// The subcommand: usage without a directory, the config's
	// projections.dir otherwise.
	if err := demoProgram().cmdProjections(context.Background(), []string{"check"}); err == nil || !strings.Contains(err.Error(), "no projections directory") {
		t.Fatalf("check without DIR: %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "reel.yaml")
	if err := os.WriteFile(cfg, []byte("projections:\n  dir: "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := demoProgram().cmdProjections(context.Background(), []string{"check", "-config", cfg}); err == nil || !strings.Contains(err.Error(), "2 error(s)") {
		t.Fatalf("check -config: %v", err)
	}
}

// reel project -validate loads projections.dir and names unknown
// projections against what was loaded.
func TestProjectValidateDeclared(t *testing.T) {
	demo, err := filepath.Abs("../examples/projections")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "reel.yaml")
	write := func(text string) {
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("projections:\n  dir: " + demo + "\nprojector:\n  projections: [orders, order_saga]\n")
	var errw bytes.Buffer
	c, err := demoProgram().loadConfig(cfg, &errw)
	if err != nil {
		t.Fatalf("declared orders beside the built-in order_saga: %v\n%s", err, errw.String())
	}
	cat, err := c.LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.SelectProjections(cat)
	if err != nil || len(ps) != 2 || ps[0].Name != "orders" || ps[0].Apply == nil {
		t.Fatalf("selected %v, %v", ps, err)
	}
	write("projections:\n  dir: " + demo + "\nprojector:\n  projections: [order]\n")
	errw.Reset()
	if _, err := demoProgram().loadConfig(cfg, &errw); err == nil || !strings.Contains(errw.String(), `projector.projections[0]: unknown projection "order" (have `) ||
		!strings.Contains(errw.String(), "event_log") {
		t.Fatalf("unknown name: %v\n%s", err, errw.String())
	}
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "x.yaml"), []byte("name: x\ntables: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write("projections:\n  dir: " + broken + "\n")
	errw.Reset()
	if _, err := demoProgram().loadConfig(cfg, &errw); err == nil || !strings.Contains(errw.String(), "projections.dir: "+filepath.Join(broken, "x.yaml")+":1:1:") {
		t.Fatalf("broken projections: %v\n%s", err, errw.String())
	}
}
