package projectors

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/reel-dev/reel/projectors/store"
)

// count returns the rows of a table of r's generation, and the rows the
// shared checkpoints and resolutions tables hold for it.
func fenceCounts(t *testing.T, r *Runner) (rows, checkpoints, resolved uint64) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []struct {
		sql string
		n   *uint64
	}{
		{"SELECT count() FROM " + store.PhysName(r.proj.Name, "log", 1), &rows},
		{"SELECT count() FROM " + store.CheckpointsTable + " WHERE proj = '" + r.proj.Name + "'", &checkpoints},
		{"SELECT count() FROM " + store.ResolvedTable + " WHERE proj = '" + r.proj.Name + "'", &resolved},
	} {
		if err := r.conn.QueryRow(ctx, q.sql).Scan(q.n); err != nil {
			t.Fatal(err)
		}
	}
	return
}

// TestStaleWorkerLandsNothing: a worker whose partition was claimed by
// another member after it (it was frozen, or is shutting down) flushes a
// batch. Nothing of it may land — rows, checkpoints — and the worker learns
// that it was fenced.
func TestStaleWorkerLandsNothing(t *testing.T) {
	ctx := context.Background()
	r, recs := handRunner(t, "fenced", 10)
	r.cfg.FenceCheckInterval = 0 // check after every batch, so the second one notices
	k := tp{Topic: handTopic, Partition: 0}
	stale := newWorker(r, testClaim(t, r, k), noPositions(r), nil)
	stale.a.process(ctx, recs[:4])
	if err := stale.a.flush(ctx); err != nil {
		t.Fatalf("the owner's flush: %v", err)
	}
	testClaim(t, r, k) // another member takes the partition over
	stale.a.process(ctx, recs[4:])
	if err := stale.a.flush(ctx); !errors.Is(err, ErrFenced) {
		t.Errorf("stale flush returned %v, want ErrFenced", err)
	}
	rows, ck, _ := fenceCounts(t, r)
	if rows != 4 {
		t.Errorf("%d rows after the stale flush, want the owner's 4", rows)
	}
	if ck != uint64(len(r.layout.Tables)) {
		t.Errorf("%d checkpoint rows, want %d (the owner's one batch)", ck, len(r.layout.Tables))
	}
}

// TestStaleDLQReplayLandsNothing: an operator's replay of a parked
// aggregate reaches a worker that lost its partition. Neither the replayed
// rows nor the resolution may land, and the operator must be told.
func TestStaleDLQReplayLandsNothing(t *testing.T) {
	ctx := context.Background()
	r, recs := handRunner(t, "fenceddlq", 3)
	k := tp{Topic: handTopic, Partition: 0}
	stale := newWorker(r, testClaim(t, r, k), noPositions(r), nil)
	testClaim(t, r, k)
	res, err := stale.resolve(ctx, string(recs[0].Key), recs, true)
	if !errors.Is(err, ErrFenced) {
		t.Errorf("stale replay returned %+v, %v; want ErrFenced", res, err)
	}
	rows, _, resolved := fenceCounts(t, r)
	if rows != 0 || resolved != 0 {
		t.Errorf("stale replay landed %d rows and %d resolutions, want none", rows, resolved)
	}
}

// TestFencedWhileStopping: a member fenced while it stops exits cleanly;
// fenced while running it rejoins; other errors end Run.
func TestFencedWhileStopping(t *testing.T) {
	other := errors.New("boom")
	for _, c := range []struct {
		err      error
		stopping bool
		rejoin   bool
		ret      error
	}{
		{fmt.Errorf("partition 3: %w", ErrFenced), true, false, nil},
		{fmt.Errorf("partition 3: %w", ErrFenced), false, true, nil},
		{other, false, false, other},
		{other, true, false, other},
		{nil, true, false, nil},
	} {
		rejoin, ret := afterConsume(c.err, c.stopping)
		if rejoin != c.rejoin || ret != c.ret {
			t.Errorf("afterConsume(%v, stopping %v) = %v, %v; want %v, %v", c.err, c.stopping, rejoin, ret, c.rejoin, c.ret)
		}
	}
}
