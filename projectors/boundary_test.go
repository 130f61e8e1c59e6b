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

// TestRuntimeHasNoSystemTableSQL: the SQL of Reel's own _reel_* tables
// lives in projectors/store, one place; the runtime (this package) calls
// it. A string literal naming a _reel_ table in a non-test file of the
// runtime is SQL that belongs there.
func TestRuntimeHasNoSystemTableSQL(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && strings.Contains(lit.Value, "_reel_") {
				t.Errorf("%s: %s: SQL of Reel's system tables belongs in projectors/store", name, lit.Value)
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("checked %d files of the runtime: the test does not see the package", checked)
	}
}

// TestEngineDoesNotImportTheDemo: no engine source file imports the demo
// (examples/demo); only the programs that embed the engine (cmd/reel, the
// load test, the test processes) and tests may. cli's
// TestEngineDoesNotImportTheDemo checks the same through `go list -deps`.
func TestEngineDoesNotImportTheDemo(t *testing.T) {
	const demo = "github.com/reel-dev/reel/examples/demo"
	programs := map[string]bool{"examples": true, "cmd": true, "loadtest": true, "testdata": true,
		filepath.Join("projectors", "internal", "projectorproc"): true}
	root := ".."
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if programs[rel] || programs[d.Name()] || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, im := range f.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); p == demo || strings.HasPrefix(p, demo+"/") {
				t.Errorf("%s imports the demo's %s", rel, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked %d engine files: the walk does not see the module", checked)
	}
}
