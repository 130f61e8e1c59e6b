package projectors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// TestWorkerIgnoresRedeliveredRecords: the poll loop may hand a worker
// records it already has — records it held from a poll made before the
// partition was revoked and assigned to this member again, followed by the
// same offsets fetched by the new assignment. Each event must be applied
// once.
func TestWorkerIgnoresRedeliveredRecords(t *testing.T) {
	ctx := context.Background()
	r, recs := handRunner(t, "redelivery", 10)
	w := newWorker(r, testClaim(t, r, tp{Topic: handTopic, Partition: 0}), noPositions(r), nil)
	w.a.process(ctx, recs[:6]) // held from the earlier assignment
	w.a.process(ctx, recs)     // fetched again by the new one
	if err := w.a.flush(ctx); err != nil {
		t.Fatal(err)
	}
	var n, distinct uint64
	if err := r.conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM "+store.PhysName(r.proj.Name, "log", 1)).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 10 || distinct != 10 {
		t.Fatalf("%d rows for %d distinct events; want 10 each: redelivered records were applied again", n, distinct)
	}
}

const handTopic = "conference.seats"

// handRunner is a runner whose workers a test drives by hand: a projection
// name logging event IDs into table "log", its schema created, a Kafka
// client on kfake, and n records of handTopic partition 0 at offsets 0…n-1.
func handRunner(t *testing.T, name string, n int) (*Runner, []*kgo.Record) {
	t.Helper()
	p := &projection.Projection{
		Name: name, Topics: []string{handTopic},
		Tables: []projection.Table{{Name: "log", Columns: []projection.Column{{Name: "event_id", Type: "String"}}, OrderBy: "event_id"}},
		Apply: func(_ context.Context, tx projection.Tx, ev schemas.Event) error {
			return tx.Emit("log", ev.ID)
		},
	}
	return handRunnerFor(t, p, n, func(int) string { return "c1" })
}

// handRunnerFor is handRunner for projection p, record i's aggregate
// (conference) being conf(i).
func handRunnerFor(t *testing.T, p *projection.Projection, n int, conf func(i int) string) (*Runner, []*kgo.Record) {
	t.Helper()
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	codec := demoCodec(t)
	name := p.Name
	brokers := testenv.Fake(t).ListenAddrs()
	r, err := NewRunner(p, ch.Conn, codec, Brokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureSchema(ctx, ch.Conn, r.layout); err != nil {
		t.Fatal(err)
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	t.Cleanup(r.cancel)
	r.cl, err = kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(name), kgo.ConsumeTopics(handTopic), kgo.AutoCommitMarks())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.cl.Close)
	var recs []*kgo.Record
	for i := range n {
		ev := schemas.NewEvent(&events.SeatsAdded{ConferenceID: conf(i), SeatType: "general", Quantity: 1, Currency: "EUR"},
			schemas.At(time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)), schemas.WithID(fmt.Sprint("e", i)))
		rec, err := codec.Encode(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		rec.Partition, rec.Offset = 0, int64(i)
		recs = append(recs, rec)
	}
	return r, recs
}

// noPositions is a worker's positions when ClickHouse holds nothing.
func noPositions(r *Runner) []int64 {
	ck := make([]int64, len(r.layout.Tables))
	for i := range ck {
		ck[i] = -1
	}
	return ck
}
