package rebuild_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reel-dev/reel/projectors/rebuild"
	"github.com/reel-dev/reel/projectors/store"
)

// loopResult counts a query loop's answers by the generation they came from.
type loopResult struct {
	queries, failed, g1, g2, mixed atomic.Int64
	nanos                          atomic.Int64
}

// joinLoop runs, on workers goroutines until stop, a query that joins two
// views of the seats projection. g1 (v1) counts cancellations, g2 (v2)
// does not: an answer whose two sides disagree on "any cancellation"
// mixes generations.
func (e *env) joinLoop(ctx context.Context, workers int, stop <-chan struct{}) (*loopResult, *sync.WaitGroup) {
	res := &loopResult{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var a, b uint64
				t0 := time.Now()
				err := e.ch.Conn.QueryRow(ctx, `SELECT sum(x.cancellations), sum(y.cancellations)
FROM seat_availability AS x INNER JOIN seats_reserved_per_conference AS y USING (conference_id)`).Scan(&a, &b)
				res.nanos.Add(int64(time.Since(t0)))
				res.queries.Add(1)
				switch {
				case err != nil:
					res.failed.Add(1)
					e.t.Logf("query failed: %v", err)
				case a > 0 && b > 0:
					res.g1.Add(1)
				case a == 0 && b == 0:
					res.g2.Add(1)
				default:
					res.mixed.Add(1)
				}
			}
		}()
	}
	return res, &wg
}

// TestViewsSwitchTogether: while 3 goroutines run a query joining two
// views of one projection, its views are switched between a v1 and a v2
// generation 30 times. With SwitchViews (unions gated by _reel_live, one
// insert) no answer mixes the generations; re-pointing the views one by
// one (what cut-over did before) is measured the same way as the control
// — its mixed answers show the loop can see a mix.
func TestViewsSwitchTogether(t *testing.T) {
	e := newEnv(t, 3)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(3000))
	e.liveG1(ctx)
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seatsV2(), rebuild.Brokers(e.brokers...), rebuild.Handover(0), rebuild.MaxLag(0),
		rebuild.ExpectChanges("seat_availability", "seat_availability_history"))
	if err != nil || !res.CutOver {
		t.Fatalf("rebuild into v2: %+v %v", res, err)
	}
	l1, err := store.StoredLayout(ctx, e.ch.Conn, seatsV2(), 1)
	if err != nil {
		t.Fatal(err)
	}
	l2 := store.NewLayout(seatsV2(), 2)

	run := func(name string, switchTo func(to int) error) *loopResult {
		stop := make(chan struct{})
		r, wg := e.joinLoop(ctx, 3, stop)
		for i := 0; i < 30; i++ {
			to := 1 + i%2 // g2 is served now: 1, 2, 1, …
			if err := switchTo(to); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		avg := time.Duration(0)
		if n := r.queries.Load(); n > 0 {
			avg = time.Duration(r.nanos.Load() / n)
		}
		t.Logf("%s: %d queries, %d failed, %d from g1, %d from g2, %d mixed; %s per query", name, r.queries.Load(), r.failed.Load(), r.g1.Load(), r.g2.Load(), r.mixed.Load(), avg)
		return r
	}
	layouts := map[int]*store.Layout{1: l1, 2: l2}
	together := run("SwitchViews", func(to int) error {
		return store.SwitchViews(ctx, e.ch.Conn, layouts[3-to], layouts[to])
	})
	if together.mixed.Load() != 0 || together.failed.Load() != 0 || together.g1.Load() == 0 || together.g2.Load() == 0 {
		t.Fatalf("SwitchViews: %d mixed, %d failed answers (want 0), %d from g1 and %d from g2 (want both)",
			together.mixed.Load(), together.failed.Load(), together.g1.Load(), together.g2.Load())
	}
	oneByOne := run("one CREATE OR REPLACE VIEW per view (control)", func(to int) error {
		return store.CreateViews(ctx, e.ch.Conn, layouts[to])
	})
	if oneByOne.g1.Load() == 0 || oneByOne.g2.Load() == 0 {
		t.Fatalf("control loop saw only one generation")
	}
	// The cost per query of the union, without switches: single-generation
	// views (as the control left them, on g2) vs the union (on g2).
	single := run("steady, single-generation views", func(int) error { return nil })
	if err := store.SwitchViews(ctx, e.ch.Conn, l1, l2); err != nil {
		t.Fatal(err)
	}
	union := run("steady, union views", func(int) error { return nil })
	if union.g2.Load() == 0 || union.mixed.Load()+union.failed.Load()+single.mixed.Load()+single.failed.Load() != 0 {
		t.Fatalf("steady loops: union %d from g2, %d mixed/failed", union.g2.Load(), union.mixed.Load()+union.failed.Load())
	}
}
