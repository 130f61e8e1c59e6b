package registry_test

import (
	"sort"
	"testing"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/projectors/conformance"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/projectors/projection"
)

// declaredDir is the declared demo: the same projections as files.
const declaredDir = "../../../projections"

// declared returns a fresh value of a declared demo projection.
func declared(t *testing.T, name string) func() *projection.Projection {
	return func() *projection.Projection {
		cat, err := events.Load()
		if err != nil {
			t.Fatal(err)
		}
		ps, err := declare.LoadDir(declaredDir, cat)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Name == name {
				return p
			}
		}
		t.Fatalf("%s declares no projection %q", declaredDir, name)
		return nil
	}
}

// The declared demo passes the same suite, checked by the same folds, as
// the Go projections.
func TestConformanceDeclared(t *testing.T) {
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := declare.LoadDir(declaredDir, cat)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		if _, ok := cases[p.Name]; !ok {
			t.Errorf("declared projection %s has no conformance case", p.Name)
			continue
		}
		names = append(names, p.Name)
	}
	sort.Strings(names)
	if len(names) != len(cases) {
		t.Fatalf("declared demo has %v, want every demo projection", names)
	}
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			c := demoCase(t, cases[n])
			c.New = declared(t, n)
			conformance.Run(t, c)
		})
	}
}
