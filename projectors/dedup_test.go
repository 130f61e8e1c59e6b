package projectors

import (
	"context"
	"testing"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// TestRetriedInsertIsDeduplicated: the same rows sent twice (an insert that
// landed after its retry decided it had not) are stored once; other rows
// with overlapping offsets (a parked aggregate's replay) are not mistaken
// for them.
func TestRetriedInsertIsDeduplicated(t *testing.T) {
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	p := &projection.Projection{
		Name: "dedup", Topics: []string{"t"},
		Tables: []projection.Table{{Name: "log", Columns: []projection.Column{{Name: "v", Type: "String"}}, OrderBy: "v"}},
		Apply:  func(context.Context, projection.Tx, schemas.Event) error { return nil },
	}
	r, err := NewRunner(p, ch.Conn, codec, Brokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureSchema(ctx, ch.Conn, r.layout); err != nil {
		t.Fatal(err)
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	defer r.cancel()
	w := newWorker(r, testClaim(t, r, tp{Topic: "t", Partition: 0}), []int64{-1, -1}, nil)
	pt := r.layout.Tables[r.layout.ByUser[0]]
	b := &batch{rows: make([][]pendingRow, len(r.layout.Tables))}
	for i := range 100 {
		b.add(r.layout.ByUser[0], int64(i), "k", []any{"row"}, []any{w.k.Topic, uint32(w.k.Partition), uint64(i), time.Unix(int64(i), 0).UTC(), w.claim.epoch})
	}
	send := func(rows []pendingRow) {
		pb, err := w.c.prepare(ctx, pt, rows)
		if err != nil {
			t.Fatal(err)
		}
		if err := pb.Send(); err != nil {
			t.Fatal(err)
		}
	}
	count := func() uint64 {
		var n uint64
		if err := ch.Conn.QueryRow(ctx, "SELECT count() FROM "+pt.Name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rows := b.rows[r.layout.ByUser[0]]
	send(rows)
	send(rows) // the retry of an insert that had landed
	if n := count(); n != 100 {
		t.Fatalf("%d rows after sending the same 100 rows twice; want 100", n)
	}
	// A different row set over the same range is a different insert.
	sub := []pendingRow{rows[0], rows[50], rows[99]}
	send(sub)
	if n := count(); n != 103 {
		t.Fatalf("%d rows after a distinct insert of 3 rows; want 103", n)
	}
}

// testClaim claims k for a worker built by hand, as onAssigned would.
func testClaim(t *testing.T, r *Runner, k tp) claim {
	t.Helper()
	cs, _, err := claimPartitions(context.Background(), r.conn, r.layout, r.log, []tp{k}, nil, "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	return cs[k]
}
