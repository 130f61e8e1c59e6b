package store_test

import (
	"strings"
	"testing"

	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// TestDiffClassifies: every kind of change is found and classified, and the
// canonical form does not depend on declaration order or whitespace.
func TestDiffClassifies(t *testing.T) {
	base := seats.Availability()
	d0 := store.DefinitionOf(base)
	if len(store.Diff(d0, d0)) != 0 {
		t.Fatal("a definition differs from itself")
	}
	cases := []struct {
		name        string
		change      func(p *projection.Projection)
		want        string
		destructive bool
	}{
		{"column with default", func(p *projection.Projection) {
			p.Tables[0].Columns = append(p.Tables[0].Columns, projection.Column{Name: "city", Type: "String", Default: "'?'"})
		}, "add column seat_availability.city: String DEFAULT '?'", false},
		{"default", func(p *projection.Projection) { p.Tables[0].Columns[1].Default = "'x'" }, "change default seat_availability.name: none → 'x'", false},
		{"view added", func(p *projection.Projection) {
			p.Views = append(p.Views, projection.View{Name: "zz", SQL: "SELECT 1"})
		}, "add view zz", false},
		{"view changed", func(p *projection.Projection) { p.Views[0].SQL += " LIMIT 1" }, "change view " + base.Views[0].Name, false},
		{"view dropped", func(p *projection.Projection) { p.Views = p.Views[1:] }, "drop view " + base.Views[0].Name, false},
		{"table on a State projection", func(p *projection.Projection) {
			p.Tables = append(p.Tables, projection.Table{Name: "extra", Columns: []projection.Column{{Name: "a", Type: "String"}}, OrderBy: "a"})
		}, "add table (needs state) extra", true},
		{"retype", func(p *projection.Projection) { p.Tables[0].Columns[5].Type = "UInt64" }, "retype column seat_availability.reservations: UInt32 → UInt64", true},
		{"rename", func(p *projection.Projection) { p.Tables[0].Columns[1].Name = "title" }, "drop column seat_availability.name", true},
		{"order by", func(p *projection.Projection) { p.Tables[0].OrderBy = "conference_id, name" }, "change table seat_availability: ORDER BY", true},
		{"history", func(p *projection.Projection) { p.Tables[0].History = !p.Tables[0].History }, "History", true},
		{"logic", func(p *projection.Projection) { p.Version++ }, "change logic seats: version 1 → version 2", true},
	}
	for _, c := range cases {
		p := seats.Availability()
		c.change(p)
		cs := store.Diff(d0, store.DefinitionOf(p))
		var s []string
		for _, x := range cs {
			s = append(s, x.String())
		}
		all := strings.Join(s, "; ")
		if !strings.Contains(all, c.want) {
			t.Errorf("%s: changes %q lack %q", c.name, all, c.want)
		}
		if got := len(store.Destructive(cs)) > 0; got != c.destructive {
			t.Errorf("%s: destructive = %v, want %v (%s)", c.name, got, c.destructive, all)
		}
	}
	// Order and whitespace do not matter; a type's spacing neither.
	p := seats.Availability()
	p.Views[0], p.Views[1] = p.Views[1], p.Views[0]
	p.Tables[0].OrderBy = "  " + p.Tables[0].OrderBy + " "
	if d1 := store.DefinitionOf(p); d1.Canonical() != d0.Canonical() {
		t.Fatalf("canonical form depends on view order or whitespace:\n%s\n%s", d0.Canonical(), d1.Canonical())
	}
	p.Tables[0].Columns[2].Type = "DateTime64(3,'UTC')"
	if cs := store.Diff(d0, store.DefinitionOf(p)); len(cs) != 0 {
		t.Fatalf("type spacing read as a change: %v", cs)
	}
}
