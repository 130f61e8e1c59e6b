package rebuild_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/rebuild"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// effectLog records which generation ran the side effect of which event.
type effectLog struct {
	mu   sync.Mutex
	runs map[string][]ran // reservation ID → runs
}

type ran struct {
	gen int
	pos projection.Position
}

func (l *effectLog) projection(gen int) *projection.Projection {
	p := seats.Availability()
	inner := p.Apply
	p.Apply = func(ctx context.Context, tx projection.Tx, ev schemas.Event) error {
		if e, ok := ev.Payload.(*events.SeatsReserved); ok {
			id, pos := e.ReservationID, tx.Position()
			tx.SideEffect(func(context.Context) error {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.runs[id] = append(l.runs[id], ran{gen, pos})
				return nil
			})
		}
		return inner(ctx, tx, ev)
	}
	return p
}

// TestSideEffectsOnceAcrossRebuild: while events stream, `reel project`
// (live g1) runs side effects; a rebuild builds g2 and cuts over, the
// supervisor then runs g2 live and g1 standby. Every reservation's effect
// runs exactly once across both generations and the rebuild's own runner:
// g1 for offsets up to the hand-over position C of its partition, g2 past it.
func TestSideEffectsOnceAcrossRebuild(t *testing.T) {
	e := newEnv(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &effectLog{runs: map[string][]ran{}}
	e.projFor = log.projection
	e.runOpts = []projectors.Opt{projectors.EffectsByGeneration(), projectors.FlushInterval(50 * time.Millisecond)}
	p := seats.Availability()
	if _, err := store.LiveGeneration(ctx, e.ch.Conn, p); err != nil {
		t.Fatal(err)
	}
	e.produce(e.w.setup())
	e.produce(e.w.next(2000))
	sup := e.supervise(ctx, seats.Availability, 200*time.Millisecond)
	e.waitApplied(p.Name, 1, time.Minute)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // events keep coming through the rebuild and the cut-over
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				e.produce(e.w.next(100))
			}
		}
	}()
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, log.projection(2), rebuild.Brokers(e.brokers...), rebuild.Handover(0), rebuild.MaxLag(500),
		rebuild.RunnerOpts(projectors.FlushInterval(50*time.Millisecond)))
	if err != nil || !res.CutOver {
		t.Fatalf("rebuild: %+v %v", res, err)
	}
	time.Sleep(time.Second) // the supervisor runs g2 live, g1 standby; events still arrive
	close(stop)
	wg.Wait()
	e.waitApplied(p.Name, 1, time.Minute)
	e.waitApplied(p.Name, 2, time.Minute)
	cancel()
	sup.stopAll()

	log.mu.Lock()
	defer log.mu.Unlock()
	per := map[int]int{}
	n := 0
	for _, ev := range e.w.events {
		r, ok := ev.Payload.(*events.SeatsReserved)
		if !ok {
			continue
		}
		n++
		runs := log.runs[r.ReservationID]
		if len(runs) != 1 {
			t.Fatalf("effect of %s ran %d times: %v", r.ReservationID, len(runs), runs)
		}
		x := runs[0]
		c := res.Effects[x.pos.Topic][x.pos.Partition]
		if (x.gen == 1) != (x.pos.Offset <= c) {
			t.Fatalf("effect of %s at %s ran in g%d; the hand-over position of its partition is %d", r.ReservationID, x.pos, x.gen, c)
		}
		per[x.gen]++
	}
	if per[1] == 0 || per[2] == 0 {
		t.Fatalf("effects per generation %v: want both (events before and after the cut-over)", per)
	}
	t.Logf("%d reservations, each effect once: %d by g1, %d by g2; hand-over at %v", n, per[1], per[2], res.Effects)
}
