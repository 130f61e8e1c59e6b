package rebuild_test

import (
	"context"
	"testing"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/rebuild"
)

// TestRebuildIntoDeclared replaces the live Go seats projection by its
// declared version (examples/projections/seats.yaml) with an ordinary
// blue/green rebuild: the shadow compare finds generation 2 (declared)
// equal to generation 1 (Go) at the same positions, the views cut over,
// and the answer still matches the fold.
func TestRebuildIntoDeclared(t *testing.T) {
	e := newEnv(t, 4)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(5000))
	e.liveG1(ctx)
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := declare.LoadDir("../../examples/projections", cat)
	if err != nil {
		t.Fatal(err)
	}
	var p *projection.Projection
	for _, d := range ps {
		if d.Name == "seats" {
			p = d
		}
	}
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, p, rebuild.Brokers(e.brokers...), rebuild.Handover(0), rebuild.MaxLag(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Generation != 2 || !res.CutOver || res.Comparison == nil || !res.Comparison.Equal() {
		t.Fatalf("rebuild into the declared projection: g%d, cut over %v, comparison %+v", res.Generation, res.CutOver, res.Comparison)
	}
	for _, d := range res.Comparison.Tables {
		t.Logf("Go g1 vs declared g2: %s", d)
	}
	if g := e.viewGeneration(ctx, "seats_available"); g != 2 {
		t.Fatalf("seats_available reads generation %d after the cut-over, want 2", g)
	}
	// New events reach the declared generation.
	e.produce(e.w.next(500))
	r := e.startRunner(p, 2)
	e.waitApplied(p.Name, 2, time.Minute)
	r.cancel()
	<-r.done
	e.assertFold(ctx, "declared g2")
}
