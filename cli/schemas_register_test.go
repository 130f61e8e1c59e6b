package cli

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/schemas"
)

// Against the real registry (Apicurio through scripts/registry.sh under
// scripts/test.sh) these tests show both halves of the compatibility
// promise: `reel schemas register` refuses a registry that would accept
// what the catalog forbids, and the levels it relies on are enforced by the
// registry itself, so a producer that bypasses Reel (a Python service with
// auto-registration) cannot register a breaking version either. srfake
// stores levels without enforcing them, so the registry's own refusals are
// asserted only against a real registry.

const orderPlaced = "shop.OrderPlaced"

// orderPlacedV3 is v2 changed as a careless producer might: the channel
// field's default dropped (FULL compatible with v2, but a v3 reader cannot
// read v1 records: only a transitive check catches it), or its type changed
// (breaks every direction).
func orderPlacedV3(t *testing.T, change string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "demo", "events", "catalog", "shop", "OrderPlaced.v2.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	const field = `{"name": "channel", "type": "string", "default": "web", "doc": "web, app or store."}`
	s := string(b)
	if !strings.Contains(s, field) {
		t.Fatalf("OrderPlaced.v2.avsc no longer has %s", field)
	}
	switch change {
	case "no-default":
		s = strings.Replace(s, field, `{"name": "channel", "type": "string"}`, 1)
	case "type":
		s = strings.Replace(s, field, `{"name": "channel", "type": "int", "default": 0}`, 1)
	default:
		t.Fatalf("unknown change %q", change)
	}
	return strings.Replace(s, "v2: sales channel added.", "v3.", 1)
}

func register(ctx context.Context, url string, args ...string) error {
	return demoProgram().cmdSchemas(ctx, append([]string{"register", "-registry", url}, args...))
}

func setLevel(t *testing.T, cl *sr.Client, level sr.CompatibilityLevel, subjects ...string) {
	t.Helper()
	for _, r := range cl.SetCompatibility(context.Background(), sr.SetCompatibility{Level: level}, subjects...) {
		if r.Err != nil {
			t.Fatalf("set %v on %v: %v", level, subjects, r.Err)
		}
	}
}

func versions(t *testing.T, cl *sr.Client, subject string) int {
	t.Helper()
	vs, err := cl.SubjectVersions(context.Background(), subject)
	var re *sr.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(vs)
}

func wantConflict(t *testing.T, what string, err error) {
	t.Helper()
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
		t.Fatalf("%s: got %v, want the registry's 409 (incompatible)", what, err)
	}
	t.Logf("%s: refused by the registry: %s", what, re.Message)
}

func TestSchemasRegisterRefusesWeakLevels(t *testing.T) {
	ctx := context.Background()
	cl, url := testenv.RegistryClient(t)
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	// Every level short of transitive FULL lets some of the catalog's
	// forbidden changes in; FULL alone only checks against the latest version.
	for _, level := range []sr.CompatibilityLevel{sr.CompatNone, sr.CompatBackward, sr.CompatBackwardTransitive, sr.CompatFull} {
		setLevel(t, cl, level)
		err := register(ctx, url)
		if !errors.Is(err, schemas.ErrWeakCompatibility) {
			t.Fatalf("global level %v: got %v, want ErrWeakCompatibility", level, err)
		}
		if subjects, err := cl.Subjects(ctx); err != nil || len(subjects) > 0 {
			t.Fatalf("global level %v: registered %v (%v) before refusing", level, subjects, err)
		}
	}

	// At the catalog's levels (set in the registry by its operator), it registers.
	setLevel(t, cl, sr.CompatFullTransitive)
	setLevel(t, cl, sr.CompatBackwardTransitive, cat.Subject("conference.SeatsAdded")) // the catalog's level for it
	if err := register(ctx, url); err != nil {
		t.Fatalf("at the catalog's levels: %v", err)
	}
	for _, typ := range cat.EventTypes() {
		if got, want := versions(t, cl, cat.Subject(typ)), len(cat.Versions(typ)); got != want {
			t.Fatalf("%s: %d versions in the registry, catalog has %d", cat.Subject(typ), got, want)
		}
	}
	if err := register(ctx, url); err != nil {
		t.Fatalf("registering again: %v", err)
	}

	// A subject weakened afterwards is refused, even though its versions are in.
	subject := cat.Subject(orderPlaced)
	setLevel(t, cl, sr.CompatBackward, subject)
	if err := register(ctx, url); !errors.Is(err, schemas.ErrWeakCompatibility) {
		t.Fatalf("subject %s at BACKWARD: got %v, want ErrWeakCompatibility", subject, err)
	} else {
		t.Log(err)
	}
}

func TestSchemasRegisterBreakingChange(t *testing.T) {
	ctx := context.Background()
	cl, url := testenv.RegistryClient(t)
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	// The registry starts at NONE; -set-compat puts each subject at the
	// catalog's level before registering.
	setLevel(t, cl, sr.CompatNone)
	if err := register(ctx, url, "-set-compat"); err != nil {
		t.Fatal(err)
	}
	subject := cat.Subject(orderPlaced)
	if res := cl.Compatibility(ctx, subject); res[0].Err != nil || res[0].Level != sr.CompatFullTransitive {
		t.Fatalf("%s level %v (%v) after -set-compat, want FULL_TRANSITIVE", subject, res[0].Level, res[0].Err)
	}

	// Reel's own gate refuses a catalog with a breaking version before the
	// registry sees it.
	dir := t.TempDir()
	manifest, err := os.ReadFile(filepath.Join("..", "examples", "demo", "events", "catalog", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "catalog.yaml"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"conference", "shop"} {
		src := filepath.Join("..", "examples", "demo", "events", "catalog", ns)
		files, err := filepath.Glob(filepath.Join(src, "*.avsc"))
		if err != nil || len(files) == 0 {
			t.Fatalf("catalog files in %s: %v", src, err)
		}
		if err := os.MkdirAll(filepath.Join(dir, ns), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, ns, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// (Not the "no-default" v3: defaults are not part of Avro's canonical
	// form, so the catalog refuses that one as "same wire schema as v2".)
	if err := os.WriteFile(filepath.Join(dir, "shop", "OrderPlaced.v3.avsc"), []byte(orderPlacedV3(t, "type")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := register(ctx, url, "-dir", dir); !errors.Is(err, schemas.ErrIncompatible) {
		t.Fatalf("reel schemas register -dir with a breaking OrderPlaced v3: got %v, want ErrIncompatible", err)
	} else {
		t.Logf("reel schemas register -dir (breaking v3): %v", err)
	}
	if n := versions(t, cl, subject); n != 2 {
		t.Fatalf("%s has %d versions after the refused register, want 2", subject, n)
	}

	// The registry itself refuses breaking versions at the level Reel set,
	// whoever registers them: here straight through the Confluent API, as a
	// stock serializer with auto-registration would.
	if !testenv.RealRegistry() {
		t.Log("srfake does not enforce compatibility levels; the registry's own refusals need REEL_REGISTRY_URL")
		return
	}
	_, err = cl.CreateSchema(ctx, subject, sr.Schema{Schema: orderPlacedV3(t, "type"), Type: sr.TypeAvro})
	wantConflict(t, "v3 with channel as int", err)
	v3 := sr.Schema{Schema: orderPlacedV3(t, "no-default"), Type: sr.TypeAvro}
	_, err = cl.CreateSchema(ctx, subject, v3)
	wantConflict(t, "v3 without channel's default (breaks v1 readers only)", err)
	if n := versions(t, cl, subject); n != 2 {
		t.Fatalf("%s has %d versions after the registry's refusals, want 2", subject, n)
	}
	// The second refusal was the transitive part of the level: at plain FULL
	// (checked against the latest version only) the registry takes it.
	setLevel(t, cl, sr.CompatFull, subject)
	if _, err := cl.CreateSchema(ctx, subject, v3); err != nil {
		t.Fatalf("v3 without channel's default at FULL: %v", err)
	}
	// Now the registry holds a version the catalog lacks: Reel refuses to
	// touch it rather than register around it.
	setLevel(t, cl, sr.CompatFullTransitive, subject)
	if err := register(ctx, url); !errors.Is(err, schemas.ErrIncompatible) {
		t.Fatalf("registry ahead of the catalog: got %v, want ErrIncompatible", err)
	} else {
		t.Log(err)
	}
}
