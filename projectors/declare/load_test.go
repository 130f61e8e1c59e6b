package declare_test

import (
	"os"
	"testing"

	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/schemas"
)

func demoCatalog(t testing.TB) *schemas.Catalog {
	t.Helper()
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// The declared demo loads against the demo catalog and yields the same
// projections (names, tables, views) as the Go versions.
func TestDemoLoads(t *testing.T) {
	ps, err := declare.LoadFS(os.DirFS("../../examples/projections"), demoCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if len(ps) != 4 {
		t.Fatalf("loaded %v, want event_log, orders, sales, seats", names)
	}
}
