package chart_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reel-dev/reel/projectors/projection"
)

// docs/library.md's values for a team's own image render as it says: the
// Deployment runs that image, its config names the image's Go projection,
// and the config validates against a binary that has it.
func TestLibraryImageValues(t *testing.T) {
	b, err := os.ReadFile("../../docs/library.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "# my-values.yaml\n")
	if i < 0 {
		t.Fatal("docs/library.md has no my-values.yaml block")
	}
	values := doc[i : i+strings.Index(doc[i:], "```")]
	f := filepath.Join(t.TempDir(), "my-values.yaml")
	if err := os.WriteFile(f, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := mustRender(t, "-f", f)
	deps := ofKind(objs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("%d Deployments, want the one group", len(deps))
	}
	d := deps[0]
	if img := str(container(d), "image"); img != "registry.example.com/channels:1.0.0" {
		t.Fatalf("image %q", img)
	}
	if s := str(d, "spec", "template", "spec", "imagePullSecrets", 0, "name"); s != "registry-example-com" {
		t.Fatalf("imagePullSecrets %q", s)
	}
	data := get(byName(t, objs, "ConfigMap", "reel"), "data").(obj)
	var key string
	for _, v := range get(d, "spec", "template", "spec", "volumes").([]any) {
		if str(v, "name") == "config" {
			key = str(v, "configMap", "items", 0, "key")
		}
	}
	cfg, err := stockParse([]byte(data[key].(string)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Projector.Projections, []string{"channels"}) {
		t.Fatalf("config projections %v", cfg.Projector.Projections)
	}
	if err := cfg.Validate(); err == nil {
		t.Fatal("the stock binary's config validation accepts a projection it does not have")
	}
	cfg.GoProjections = []*projection.Projection{{Name: "channels"}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("with the image's projection: %v", err)
	}
	// A group naming a projection outside projectionCatalog fails the install.
	if _, err := render(t, "-f", f, "--set", "groups[0].projections={orders}"); err == nil || !strings.Contains(err.Error(), "unknown projection") {
		t.Fatalf("a group naming what the image lacks: %v", err)
	}
}
