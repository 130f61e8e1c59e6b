package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// The engine knows no domain: no engine package depends, directly or
// through another, on the demo's projections or services. Only the
// programs that embed the engine (cmd/reel, the load test, test
// processes) may.
func TestEngineDoesNotImportTheDemo(t *testing.T) {
	const mod = "github.com/reel-dev/reel/"
	engine := []string{
		"cli", "schemas", "producers", "projectors", "projectors/declare", "projectors/rebuild",
		"projectors/conformance", "internal/config", "internal/app", "internal/httpapi",
	}
	demo := []string{
		"examples/demo/projectors/shop", "examples/demo/projectors/seats", "examples/demo/projectors/eventlog",
		"examples/demo/projectors/registry", "examples/demo/producers/seats", "examples/demo/producers/shop",
	}
	deps := func(pkg string) map[string]bool {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		m := map[string]bool{}
		for _, l := range strings.Fields(string(out)) {
			m[strings.TrimPrefix(l, mod)] = true
		}
		return m
	}
	for _, e := range engine {
		d := deps(e)
		for _, x := range demo {
			if d[x] {
				t.Errorf("engine package %s imports the demo's %s", e, x)
			}
		}
	}
	// The check sees the demo where it is: the stock binary carries it.
	if d := deps("cmd/reel"); !d["examples/demo/projectors/registry"] || !d["examples/demo/producers/shop"] || !d["cli"] {
		t.Fatal("go list -deps ./cmd/reel does not list the demo it compiles in")
	}
}
