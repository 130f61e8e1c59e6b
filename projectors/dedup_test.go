package projectors

import (
	"context"
	"slices"
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
	r := logRunner(t, ch, "dedup")
	w := newWorker(r, testClaim(t, r, tp{Topic: "t", Partition: 0}), []int64{-1, -1}, nil)
	pt := r.layout.Tables[r.layout.ByUser[0]]
	b := &batch{rows: make([][]pendingRow, len(r.layout.Tables))}
	for i := range 100 {
		b.add(r.layout.ByUser[0], int64(i), "k", []any{"row"}, []any{w.k.Topic, uint32(w.k.Partition), uint64(i), time.Unix(int64(i), 0).UTC(), w.claim.epoch})
	}
	send := func(rows []pendingRow) {
		mb := &batch{rows: make([][]pendingRow, len(r.layout.Tables))}
		mb.rows[r.layout.ByUser[0]] = rows
		pb, _, err := prepareGroup(ctx, r, r.layout.ByUser[0], []*member{{c: w.c, b: mb}})
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

// logRunner is a runner of a one-table projection (log: v String) whose
// tables exist, for workers built by hand; it is not started.
func logRunner(t *testing.T, ch testenv.CH, name string) *Runner {
	t.Helper()
	p := &projection.Projection{
		Name: name, Topics: []string{"t"},
		Tables: []projection.Table{{Name: "log", Columns: []projection.Column{{Name: "v", Type: "String"}}, OrderBy: "v"}},
		Apply:  func(context.Context, projection.Tx, schemas.Event) error { return nil },
	}
	r, err := NewRunner(p, ch.Conn, demoCodec(t), Brokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureSchema(context.Background(), ch.Conn, r.layout); err != nil {
		t.Fatal(err)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	t.Cleanup(r.cancel)
	return r
}

// demoCodec decodes the demo's events.
func demoCodec(t *testing.T) *schemas.Codec {
	t.Helper()
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	c, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	return c
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

// TestGroupInsert: the batches of two partitions become one insert per
// table; the same group sent again is deduplicated; in a group, a row is
// judged by its own partition's claim, so a member whose claim was
// superseded lands nothing while the other member's rows land.
func TestGroupInsert(t *testing.T) {
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	r := logRunner(t, ch, "grouped")
	ti := r.layout.ByUser[0]
	pt := r.layout.Tables[ti]
	members := func(ws []*worker, from int) []*member {
		var ms []*member
		for _, w := range ws {
			b := &batch{rows: make([][]pendingRow, len(r.layout.Tables))}
			for off := from; off < from+50; off++ {
				b.add(ti, int64(off), "k", []any{"row"}, []any{w.k.Topic, uint32(w.k.Partition), uint64(off), time.Unix(int64(off), 0).UTC(), w.claim.epoch})
			}
			b.last = int64(from + 49)
			ms = append(ms, &member{c: w.c, b: b, ctx: ctx})
		}
		return ms
	}
	count := func(part int) uint64 {
		var n uint64
		if err := ch.Conn.QueryRow(ctx, "SELECT count() FROM "+pt.Name+" WHERE _partition = ?", uint32(part)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	w0 := newWorker(r, testClaim(t, r, tp{Topic: "t", Partition: 0}), []int64{-1, -1}, nil)
	w1 := newWorker(r, testClaim(t, r, tp{Topic: "t", Partition: 1}), []int64{-1, -1}, nil)
	inserts := func() uint64 {
		var n uint64
		if err := ch.Conn.QueryRow(ctx, "SELECT value FROM system.events WHERE event = 'InsertQuery'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ms := members([]*worker{w0, w1}, 0)
	before := inserts()
	persistGroup(ctx, r, ms)
	if n := inserts() - before; n != 1 {
		t.Errorf("two partitions' batches of one table took %d inserts; want 1", n)
	}
	persistGroup(ctx, r, members([]*worker{w0, w1}, 0)) // the same group again: a retry that had landed
	for _, m := range ms {
		if m.err != nil {
			t.Fatal(m.err)
		}
	}
	if a, b := count(0), count(1); a != 50 || b != 50 {
		t.Fatalf("rows of partitions 0 and 1: %d and %d; want 50 each", a, b)
	}
	// Another member claims partition 1: w1 is stale, w0 is not.
	testClaim(t, r, tp{Topic: "t", Partition: 1})
	ms = members([]*worker{w0, w1}, 50)
	persistGroup(ctx, r, ms)
	if a, b := count(0), count(1); a != 100 || b != 50 {
		t.Fatalf("after partition 1 was claimed anew: rows of partitions 0 and 1: %d and %d; want 100 and 50", a, b)
	}
}

// TestGroupTake: a group takes the queued batches oldest first while every
// table's rows stay within the bound, and always at least one batch.
func TestGroupTake(t *testing.T) {
	r := &Runner{layout: &store.Layout{Tables: make([]store.PhysTable, 2)}}
	g := &grouper{r: r, maxRows: 10}
	queue := func(rows ...[2]int) {
		for _, n := range rows {
			b := &batch{rows: [][]pendingRow{make([]pendingRow, n[0]), make([]pendingRow, n[1])}}
			g.queue = append(g.queue, &member{b: b})
		}
	}
	queue([2]int{4, 0}, [2]int{4, 9}, [2]int{1, 2}, [2]int{30, 0}, [2]int{1, 0})
	var sizes []int
	for len(g.queue) > 0 {
		sizes = append(sizes, len(g.take()))
	}
	// {4,0}+{4,9} fit (8 and 9 rows); {1,2} would make 11 in the second table: a new group;
	// {30,0} is over the bound alone: a group of its own.
	if want := []int{2, 1, 1, 1}; !slices.Equal(sizes, want) {
		t.Errorf("group sizes %v, want %v", sizes, want)
	}
}
