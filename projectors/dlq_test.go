package projectors_test

import (
	"context"
	"errors"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// TestParkAndReplay: a poison record and an Apply failure park only their
// aggregates; every other aggregate keeps flowing; after the fix, replay
// brings the parked aggregate to exactly the fold of all its events.
func TestParkAndReplay(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	createTopic(t, brokers, seats.Topic, 3)
	ctx := context.Background()

	rng := rand.New(rand.NewSource(7))
	evs := seatEvents(rng, 10, 600)
	const broken = "conf-003" // Apply fails for it until "fixed"
	var fixed atomic.Bool
	p := seats.Availability()
	inner := p.Apply
	p.Apply = func(ctx context.Context, tx projection.Tx, ev schemas.Event) error {
		if tx.AggregateID() == broken && !fixed.Load() {
			if _, ok := ev.Payload.(*events.SeatsReserved); ok {
				return errors.New("simulated bug in Apply")
			}
		}
		return inner(ctx, tx, ev)
	}
	last := produce(t, brokers, evs)
	// A poison record for conf-007: bytes that do not decode, then more
	// valid events of conf-007 and others.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res := cl.ProduceSync(ctx, &kgo.Record{Topic: seats.Topic, Key: []byte("conf-007"), Value: []byte("not avro at all"),
		Headers: []kgo.RecordHeader{{Key: schemas.HeaderType, Value: []byte("conference.SeatsReserved")}}})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	poison := res[0].Record
	more := seatEvents(rand.New(rand.NewSource(8)), 10, 200)[30:] // reservations only
	for p, o := range produce(t, brokers, more) {
		last[p] = max(last[p], o)
	}
	last[poison.Partition] = max(last[poison.Partition], poison.Offset)

	codec := newCodec(t)
	r, err := projectors.NewRunner(p, ch.Conn, codec, projectors.Brokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	waitApplied(t, ch, p.Name, seats.Topic, last, done)

	all := append(append([]schemas.Event(nil), evs...), more...)
	want := foldSeats(all)
	got := queryReserved(t, ch)
	for k, v := range want {
		conf := k[:8]
		if conf == broken || conf == "conf-007" {
			continue
		}
		if got[k] != v {
			t.Errorf("%s: healthy aggregate has %d reserved, fold says %d", k, got[k], v)
		}
	}
	var parkedBroken, parkedPoison uint64
	if err := ch.Conn.QueryRow(ctx, "SELECT countIf(aggregate_id = ?), countIf(aggregate_id = 'conf-007') FROM seats_parked", broken).Scan(&parkedBroken, &parkedPoison); err != nil {
		t.Fatal(err)
	}
	wantBroken := 0
	firstBad := -1
	for i, ev := range all {
		if ev.AggregateID == broken {
			if _, ok := ev.Payload.(*events.SeatsReserved); ok && firstBad < 0 {
				firstBad = i
			}
			if firstBad >= 0 {
				wantBroken++
			}
		}
	}
	if int(parkedBroken) != wantBroken || wantBroken == 0 {
		t.Fatalf("parked events of %s: %d, want %d (the failing event and every later one)", broken, parkedBroken, wantBroken)
	}
	if parkedPoison == 0 {
		t.Fatal("poison record for conf-007 was not parked")
	}
	var reason string
	if err := ch.Conn.QueryRow(ctx, "SELECT reason FROM seats_parked WHERE aggregate_id = 'conf-007' ORDER BY _offset LIMIT 1").Scan(&reason); err != nil {
		t.Fatal(err)
	}
	if reason != projectors.ReasonDecode {
		t.Fatalf("poison reason %q, want %q", reason, projectors.ReasonDecode)
	}

	// Fix and replay: the broken aggregate now equals the fold.
	fixed.Store(true)
	rr, err := r.ReplayParked(ctx, broken)
	if err != nil {
		t.Fatal(err)
	}
	if rr.Resolved != wantBroken || rr.StillHeld != 0 {
		t.Fatalf("replay: %+v, want %d resolved", rr, wantBroken)
	}
	got = queryReserved(t, ch)
	for k, v := range want {
		if k[:8] == broken && got[k] != v {
			t.Errorf("%s after replay: %d reserved, fold says %d", k, got[k], v)
		}
	}
	// The poison record still does not decode: replay keeps it parked.
	rr, err = r.ReplayParked(ctx, "conf-007")
	if err != nil {
		t.Fatal(err)
	}
	if rr.Resolved != 0 || rr.StillHeld == 0 || rr.Error == "" {
		t.Fatalf("replay of undecodable aggregate: %+v; want it still parked with an error", rr)
	}
	// Discard drops it and lets later events flow.
	if rr, err = r.DiscardParked(ctx, "conf-007"); err != nil || rr.Resolved == 0 {
		t.Fatalf("discard: %+v %v", rr, err)
	}
	var left uint64
	if err := ch.Conn.QueryRow(ctx, "SELECT count() FROM seats_parked").Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d parked events left after replay and discard", left)
	}
	// New events of the discarded aggregate are applied again.
	extra := []schemas.Event{schemas.NewEvent(&events.SeatsReserved{ConferenceID: "conf-007", ReservationID: "late", SeatType: "vip", Quantity: 3, ReservedAt: time.Now()})}
	lp := produce(t, brokers, extra)
	waitApplied(t, ch, p.Name, seats.Topic, lp, done)
	var parkedNow uint64
	if err := ch.Conn.QueryRow(ctx, "SELECT count() FROM seats_parked").Scan(&parkedNow); err != nil {
		t.Fatal(err)
	}
	if parkedNow != 0 {
		t.Fatalf("event after discard was parked")
	}
	cancel()
	<-done
}

func newCodec(t *testing.T) *schemas.Codec {
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

func queryReserved(t *testing.T, ch testenv.CH) map[string]int64 {
	t.Helper()
	rows, err := ch.Conn.Query(context.Background(), "SELECT conference_id, seat_type, reserved FROM seats_available")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var c, st string
		var n int64
		if err := rows.Scan(&c, &st, &n); err != nil {
			t.Fatal(err)
		}
		got[c+"/"+st] = n
	}
	return got
}
