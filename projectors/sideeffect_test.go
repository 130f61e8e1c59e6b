package projectors_test

import (
	"context"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// TestSideEffectsOnlyLive: side effects run once per applied event when the
// projection is live, after its rows are durable, and never during a replay.
func TestSideEffectsOnlyLive(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	createTopic(t, brokers, seats.Topic, 3)
	evs := seatEvents(rand.New(rand.NewSource(3)), 5, 300)
	last := produce(t, brokers, evs)

	var mu sync.Mutex
	calls := map[int]map[string]int{} // generation → event ID → calls
	withEffect := func(gen int) *projection.Projection {
		p := seats.Availability()
		inner := p.Apply
		p.Apply = func(ctx context.Context, tx projection.Tx, ev schemas.Event) error {
			if _, ok := ev.Payload.(*events.SeatsReserved); ok {
				id := ev.ID
				tx.SideEffect(func(ctx context.Context) error {
					mu.Lock()
					defer mu.Unlock()
					if calls[gen] == nil {
						calls[gen] = map[string]int{}
					}
					calls[gen][id]++
					return nil
				})
			}
			return inner(ctx, tx, ev)
		}
		return p
	}
	run := func(gen int, opts ...projectors.Opt) {
		p := withEffect(gen)
		r, err := projectors.NewRunner(p, ch.Conn, newCodec(t), append([]projectors.Opt{projectors.Brokers(brokers...), projectors.Generation(gen)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		waitGen(t, ch, p.Name, gen, seats.Topic, last, done)
		cancel()
		<-done // the runner returns after every flush, side effects included
	}
	run(1)
	run(2, projectors.Replay(true), projectors.WithoutViews())

	reservations := 0
	for _, ev := range evs {
		if _, ok := ev.Payload.(*events.SeatsReserved); ok {
			reservations++
			if n := calls[1][ev.ID]; n != 1 {
				t.Fatalf("live: side effect of %s ran %d times, want 1", ev.ID, n)
			}
		}
	}
	if len(calls[1]) != reservations || reservations == 0 {
		t.Fatalf("live: %d side effects for %d reservations", len(calls[1]), reservations)
	}
	if len(calls[2]) != 0 {
		t.Fatalf("replay ran %d side effects; want none", len(calls[2]))
	}
}

func waitGen(t *testing.T, ch testenv.CH, proj string, gen int, topic string, last map[int32]int64, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- store.WaitApplied(ctx, ch.Conn, proj, gen, map[string]map[int32]int64{topic: last}, 20*time.Millisecond)
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-done:
		t.Fatalf("projector stopped early: %v", err)
	}
}
