package projectors_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBoundaries walks every non-test Go file of the module:
//
//   - The SQL of Reel's own _reel_* tables lives in projectors/store, one
//     place; the runtime (this package), the rebuild, the CLI and the
//     supervisor call it. A string literal naming a _reel_ table anywhere
//     else is SQL that belongs there.
//   - No engine source file imports the demo (examples/demo); only the
//     programs that embed the engine (cmd/reel, the load test, the test
//     processes) and tests may. cli's TestEngineDoesNotImportTheDemo
//     checks the same through `go list -deps`.
func TestBoundaries(t *testing.T) {
	const demo = "github.com/reel-dev/reel/examples/demo"
	store := filepath.Join("projectors", "store")
	programs := []string{"examples", "cmd", "loadtest", filepath.Join("projectors", "internal", "projectorproc")}
	in := func(rel, dir string) bool {
		return rel == dir || strings.HasPrefix(rel, dir+string(filepath.Separator))
	}
	root := ".."
	checked, runtime := 0, 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		checked++
		if filepath.Dir(rel) == "projectors" {
			runtime++
		}
		program := false
		for _, p := range programs {
			program = program || in(rel, p)
		}
		if !program {
			for _, im := range f.Imports {
				if p, _ := strconv.Unquote(im.Path.Value); p == demo || strings.HasPrefix(p, demo+"/") {
					t.Errorf("%s imports the demo's %s", rel, p)
				}
			}
		}
		if !in(rel, store) {
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && strings.Contains(lit.Value, "_reel_") {
					t.Errorf("%s: %s: SQL of Reel's system tables belongs in projectors/store", rel, lit.Value)
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 || runtime < 5 {
		t.Fatalf("checked %d files, %d of the runtime: the walk does not see the module", checked, runtime)
	}
}
