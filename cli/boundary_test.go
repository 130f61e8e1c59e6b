package cli

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// The engine knows no domain: no engine package depends, directly or
// through another, on anything under examples/ (the demo's event types,
// catalog, projections or services), nor embeds a demo catalog. Only the
// programs that embed the engine (cmd/reel, the load test, test
// processes) may.
func TestEngineDoesNotImportTheDemo(t *testing.T) {
	const mod = "github.com/reel-dev/reel/"
	engine := []string{
		"cli", "schemas", "producers", "projectors", "projectors/projection", "projectors/projection/projectiontest",
		"projectors/store", "projectors/declare", "projectors/rebuild",
		"projectors/conformance", "internal/config", "internal/app", "internal/httpapi",
	}
	type pkg struct {
		ImportPath string
		Deps       []string
		EmbedFiles []string
		Standard   bool
	}
	list := func(p string) []pkg {
		out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,Deps,EmbedFiles,Standard", mod+p).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", p, err)
		}
		var ps []pkg
		dec := json.NewDecoder(strings.NewReader(string(out)))
		for dec.More() {
			var x pkg
			if err := dec.Decode(&x); err != nil {
				t.Fatal(err)
			}
			ps = append(ps, x)
		}
		return ps
	}
	for _, e := range engine {
		for _, p := range list(e) {
			if p.Standard || !strings.HasPrefix(p.ImportPath, mod) {
				continue
			}
			in := strings.TrimPrefix(p.ImportPath, mod)
			if strings.HasPrefix(in, "examples/") {
				t.Errorf("engine package %s imports %s", e, in)
			}
			for _, f := range p.EmbedFiles {
				if strings.HasPrefix(f, "demo/") || strings.Contains(f, "/demo/") {
					t.Errorf("engine package %s depends on %s, which embeds the demo's %s", e, in, f)
				}
			}
		}
	}
	// The check sees the demo where it is: the stock binary carries it.
	var found []string
	for _, p := range list("cmd/reel") {
		in := strings.TrimPrefix(p.ImportPath, mod)
		if in == "examples/demo/events" || in == "examples/demo/projectors/registry" || in == "examples/demo/producers/shop" {
			found = append(found, in)
			if in == "examples/demo/events" && len(p.EmbedFiles) == 0 {
				t.Error("examples/demo/events embeds no catalog: the check of embedded files sees nothing")
			}
		}
	}
	if len(found) != 3 {
		t.Fatalf("go list -deps ./cmd/reel lists %v of the demo it compiles in, want 3 packages", found)
	}
}
