package projectors

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// TestCheckpointsRideWithNextBatch: a batch's checkpoints are written with
// the next batch's first inserts (one round trip less per batch), or when
// the worker is idle; a batch with side effects writes its own before they
// run, so that the cut-over's hand-over, which reads positions, sees it.
func TestCheckpointsRideWithNextBatch(t *testing.T) {
	ctx := context.Background()
	var effectSaw atomic.Int64 // the parked table's position when the effect ran
	effectSaw.Store(-2)
	var r *Runner
	p := &projection.Projection{
		Name: "ckptride", Topics: []string{handTopic},
		Tables: []projection.Table{{Name: "log", Columns: []projection.Column{{Name: "event_id", Type: "String"}}, OrderBy: "event_id"}},
		Apply: func(_ context.Context, tx projection.Tx, ev schemas.Event) error {
			if ev.ID == "e12" {
				tx.SideEffect(func(ctx context.Context) error {
					effectSaw.Store(parkedPosition(ctx, t, r))
					return nil
				})
			}
			return tx.Emit("log", ev.ID)
		},
	}
	r, recs := handRunnerFor(t, p, 15, func(int) string { return "c1" })
	w := newWorker(r, testClaim(t, r, tp{Topic: handTopic, Partition: 0}), noPositions(r), nil)
	batch := batcher(t, w, recs)
	// The parked table gets no rows: only checkpoints advance it.
	batch(0, 5)
	if got := parkedPosition(ctx, t, r); got != -1 {
		t.Fatalf("after the first batch the parked table is at %d; want -1 (its checkpoints wait for the next batch)", got)
	}
	batch(5, 10)
	if got := parkedPosition(ctx, t, r); got != 4 {
		t.Fatalf("after the second batch the parked table is at %d; want 4 (the first batch's checkpoints, sent with the second)", got)
	}
	if err := w.a.tick(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := parkedPosition(ctx, t, r); got != 9 {
		t.Fatalf("after an idle tick the parked table is at %d; want 9", got)
	}
	batch(10, 15) // e12 has a side effect
	if got := effectSaw.Load(); got != 14 {
		t.Fatalf("the side effect ran with the parked table at %d; want 14 (its batch's checkpoints first)", got)
	}
	var rows uint64
	if err := r.conn.QueryRow(ctx, "SELECT count() FROM "+store.PhysName(r.proj.Name, "log", 1)).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 15 {
		t.Fatalf("%d rows; want 15", rows)
	}
}

// batcher returns a function that applies recs[from:to] as one batch of
// w and ends it.
func batcher(t *testing.T, w *worker, recs []*kgo.Record) func(from, to int) {
	return func(from, to int) {
		t.Helper()
		if err := w.a.process(context.Background(), recs[from:to]); err != nil {
			t.Fatal(err)
		}
		if err := w.a.endBatch(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// parkedPosition is the position of r's parked table for partition 0 of
// handTopic (-1: none).
func parkedPosition(ctx context.Context, t *testing.T, r *Runner) int64 {
	t.Helper()
	pos, err := store.ReadPositions(ctx, r.conn, r.layout)
	if err != nil {
		t.Error(err)
		return -3
	}
	v, ok := pos[store.TopicPartition{Topic: handTopic, Partition: 0}]
	if !ok {
		return -1
	}
	return v[r.layout.Parked]
}

// TestStateTableCoversCheckpoints: a batch whose State rows include its
// last event writes no checkpoints (nor the previous batch's deferred
// ones): once the State table holds an offset, every table of the
// generation holds every row up to it, and the positions say so — the
// runtime's (ReadPositions), the rebuild's (AppliedPositions), WaitApplied
// and QueryProgress. A batch whose last event changes no state still
// writes them.
func TestStateTableCoversCheckpoints(t *testing.T) {
	ctx := context.Background()
	p := &projection.Projection{
		Name: "ckptstate", Topics: []string{handTopic},
		Tables: []projection.Table{
			{Name: "log", Columns: []projection.Column{{Name: "event_id", Type: "String"}}, OrderBy: "event_id"},
			{Name: "cur", State: true, Key: "conference_id", OrderBy: "conference_id",
				Columns: []projection.Column{{Name: "conference_id", Type: "String"}, {Name: "last", Type: "String"}}},
		},
		Apply: func(_ context.Context, tx projection.Tx, ev schemas.Event) error {
			if err := tx.Emit("log", ev.ID); err != nil {
				return err
			}
			if ev.ID == "e9" {
				return nil // no state change: the second batch's last event
			}
			return tx.Emit("cur", tx.AggregateID(), ev.ID)
		},
	}
	r, recs := handRunnerFor(t, p, 15, func(i int) string { return fmt.Sprint("c", i%3) })
	w := newWorker(r, testClaim(t, r, tp{Topic: handTopic, Partition: 0}), noPositions(r), nil)
	batch := batcher(t, w, recs)
	checkpoints := func() uint64 {
		t.Helper()
		var n uint64
		if err := r.conn.QueryRow(ctx, "SELECT count() FROM "+store.CheckpointsTable+" WHERE proj = ?", p.Name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Every table's position, the generation's applied one, WaitApplied's
	// and QueryProgress's view of partition 0.
	positions := func(want int64) {
		t.Helper()
		pos, err := store.ReadPositions(ctx, r.conn, r.layout)
		if err != nil {
			t.Fatal(err)
		}
		for i, got := range pos[tp{Topic: handTopic, Partition: 0}] {
			if got != want {
				t.Errorf("table %s is at %d; want %d", r.layout.Tables[i].Name, got, want)
			}
		}
		if err := store.WaitApplied(ctx, r.conn, p.Name, 1, map[string]map[int32]int64{handTopic: {0: want}}, 0); err != nil {
			t.Error(err)
		}
		prog, err := store.QueryProgress(ctx, r.conn, p, 1)
		if err != nil || len(prog) != 1 || prog[0].Applied != want {
			t.Errorf("QueryProgress = %+v (%v); want partition 0 applied at %d", prog, err, want)
		}
	}
	if err := store.RecordDefinition(ctx, r.conn, p, 1, 1, "test", nil); err != nil {
		t.Fatal(err)
	}
	batch(0, 5)
	if err := w.a.tick(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := checkpoints(); n != 0 {
		t.Fatalf("%d checkpoint rows after a batch whose last event the State table holds; want none", n)
	}
	positions(4)
	batch(5, 10) // e9 changes no state: its checkpoints are deferred
	if n := checkpoints(); n != 0 {
		t.Fatalf("%d checkpoint rows before the next batch or tick; want none yet", n)
	}
	if err := w.a.tick(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := checkpoints(); n == 0 {
		t.Fatal("no checkpoint after an idle tick following a batch whose last event changed no state")
	}
	positions(9)
	batch(10, 15)
	positions(14)
}
