package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/reel-dev/reel/examples/demo/events"
)

// reel dev -catalog -projections runs the user's declared projections on
// their catalog and queries their views and tables; a catalog alone, or
// broken projections, stop it before anything starts.
func TestDevSetup(t *testing.T) {
	cat, projs, qs, err := demoProgram().devSetup("../schemas/testdata/acme", "../projectors/declare/testdata/acme")
	if err != nil {
		t.Fatal(err)
	}
	if cat.Type("com.acme.orders.OrderShipped") == nil || len(projs) != 1 || projs[0].Name != "acme_orders" {
		t.Fatalf("catalog %s, projections %v", cat.Source(), projs)
	}
	var sqls []string
	for _, q := range qs {
		sqls = append(sqls, q.sql)
	}
	want := []string{
		"SELECT * FROM acme_shipments_per_carrier LIMIT 10",
		"SELECT * FROM acme_orders LIMIT 10",
		"SELECT * FROM acme_shipments ORDER BY _event_ts DESC LIMIT 10",
	}
	if strings.Join(sqls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("queries:\n%s\nwant:\n%s", strings.Join(sqls, "\n"), strings.Join(want, "\n"))
	}
	// The Go projections compiled in: queried through their views and
	// tables unless the program gave its own queries.
	_, projs, qs, err = demoProgram().devSetup("", "")
	if err != nil || len(projs) != 5 || len(qs) == 0 || qs[0].sql != "SELECT * FROM seats_available LIMIT 10" {
		t.Fatalf("the demo: %d projections, queries %v, %v", len(projs), qs, err)
	}
	own := newProgram(WithProjections(projs[0]), WithDevQuery("mine", "SELECT 1"), WithCatalog(events.FS()))
	if _, _, qs, err := own.devSetup("", ""); err != nil || len(qs) != 1 || qs[0].sql != "SELECT 1" {
		t.Fatalf("the program's queries: %v, %v", qs, err)
	}
	if _, _, _, err := newProgram().devSetup("", ""); !errors.Is(err, errUsage) {
		t.Fatalf("nothing to run: %v", err)
	}
	// The engine has no catalog: a program without one needs -catalog.
	if _, _, _, err := newProgram(WithProjections(projs[0])).devSetup("", ""); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "no event catalog") {
		t.Fatalf("no catalog: %v", err)
	}
	if _, _, _, err := demoProgram().devSetup("../schemas/testdata/acme", ""); !errors.Is(err, errUsage) {
		t.Fatalf("-catalog without -projections: %v", err)
	}
	// The demo's declared projections against a foreign catalog: every
	// event type is unknown.
	if _, _, _, err := demoProgram().devSetup("../schemas/testdata/acme", "../examples/projections"); err == nil ||
		!strings.Contains(err.Error(), `has no event type "shop.OrderPlaced"`) {
		t.Fatalf("mismatched catalog: %v", err)
	}
}

// `reel project` of a program without a catalog, given a config that names
// none, stops at validation and says where a catalog goes.
func TestProjectWithoutCatalog(t *testing.T) {
	t.Setenv("REEL_CATALOG", "")
	var w strings.Builder
	if _, err := newProgram().loadConfig("", &w); err == nil || !strings.Contains(w.String(), "catalog.dir: no event catalog: set catalog.dir (env REEL_CATALOG)") {
		t.Fatalf("no catalog: %v\n%s", err, w.String())
	}
	w.Reset()
	if _, err := newProgram(WithCatalog(events.FS())).loadConfig("", &w); err != nil {
		t.Fatalf("with the program's catalog: %v\n%s", err, w.String())
	}
}
