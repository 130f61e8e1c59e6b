package declare_test

import (
	"os"
	"strings"
	"testing"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/schemas"
)

func demoCatalog(t testing.TB) *schemas.Catalog {
	t.Helper()
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// The declared demo loads against the demo catalog: every demo projection.
func TestDemoLoads(t *testing.T) {
	ps, err := declare.LoadFS(os.DirFS("../../examples/projections"), demoCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "event_log,order_saga,orders,sales,seats" {
		t.Fatalf("loaded %v, want every demo projection", names)
	}
}
