package projectors_test

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// seatEvents generates a reproducible history over n conferences.
func seatEvents(rng *rand.Rand, conferences, reservations int) []schemas.Event {
	var evs []schemas.Event
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for c := 0; c < conferences; c++ {
		id := fmt.Sprintf("conf-%03d", c)
		evs = append(evs, schemas.NewEvent(&events.ConferenceCreated{ConferenceID: id, Name: "Conf " + id, StartsAt: at, EndsAt: at.Add(48 * time.Hour), TimeZone: "UTC"}, schemas.At(at)))
		for _, st := range []string{"general", "vip"} {
			evs = append(evs, schemas.NewEvent(&events.SeatsAdded{ConferenceID: id, SeatType: st, Quantity: 1000, PriceCents: 10000, Currency: "EUR"}, schemas.At(at)))
		}
	}
	for i := 0; i < reservations; i++ {
		id := fmt.Sprintf("conf-%03d", rng.Intn(conferences))
		st := []string{"general", "vip"}[rng.Intn(2)]
		q := 1 + rng.Intn(4)
		if rng.Intn(10) == 0 {
			evs = append(evs, schemas.NewEvent(&events.SeatReservationCancelled{ConferenceID: id, ReservationID: fmt.Sprint("r", i), SeatType: st, Quantity: q, Reason: "changed plans", CancelledAt: at}, schemas.At(at)))
			continue
		}
		evs = append(evs, schemas.NewEvent(&events.SeatsReserved{ConferenceID: id, ReservationID: fmt.Sprint("r", i), SeatType: st, Quantity: q, AttendeeEmail: "a@example.com", ReservedAt: at}, schemas.At(at)))
	}
	return evs
}

// foldSeats computes, independently of the projection, reserved seats per
// conference and seat type.
func foldSeats(evs []schemas.Event) map[string]int64 {
	out := map[string]int64{}
	for _, ev := range evs {
		switch e := ev.Payload.(type) {
		case *events.SeatsReserved:
			out[e.ConferenceID+"/"+e.SeatType] += int64(e.Quantity)
		case *events.SeatReservationCancelled:
			out[e.ConferenceID+"/"+e.SeatType] -= int64(e.Quantity)
		case *events.SeatsAdded:
			out[e.ConferenceID+"/"+e.SeatType] += 0
		}
	}
	return out
}

func produce(t *testing.T, brokers []string, evs []schemas.Event) map[int32]int64 {
	t.Helper()
	ctx := context.Background()
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, ev := range evs {
		r, err := codec.Encode(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	last := map[int32]int64{}
	for _, r := range res {
		last[r.Record.Partition] = max(last[r.Record.Partition], r.Record.Offset)
	}
	return last
}

func createTopic(t *testing.T, brokers []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(context.Background(), partitions, 1, nil, topic); err != nil {
		t.Logf("create topic %s: %v", topic, err)
	}
}

// waitApplied polls ClickHouse until the projection holds every offset.
func waitApplied(t *testing.T, ch testenv.CH, proj string, topic string, last map[int32]int64, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("projector stopped early: %v", err)
		default:
		}
		err := store.WaitApplied(context.Background(), ch.Conn, proj, 1, map[string]map[int32]int64{topic: last}, 0)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projection %s did not apply %v in time: %v", proj, last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSeatsEndToEnd(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	topic := seats.Topic
	createTopic(t, brokers, topic, 6)

	rng := rand.New(rand.NewSource(1))
	evs := seatEvents(rng, 20, 3000)
	last := produce(t, brokers, evs)

	cat, _ := events.Load()
	codec, _ := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	p := seats.Availability()
	r, err := projectors.NewRunner(p, ch.Conn, codec, projectors.Brokers(brokers...), projectors.KafkaOpts(kgo.ClientID(t.Name())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitApplied(t, ch, p.Name, topic, last, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	want := foldSeats(evs)
	rows, err := ch.Conn.Query(context.Background(), "SELECT conference_id, seat_type, reserved FROM seats_available")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for rows.Next() {
		var c, st string
		var n int64
		if err := rows.Scan(&c, &st, &n); err != nil {
			t.Fatal(err)
		}
		got[c+"/"+st] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	compareMaps(t, "seats reserved", want, got)
	var total int64
	if err := ch.Conn.QueryRow(context.Background(), "SELECT sum(seats_reserved) FROM seats_reserved_per_conference").Scan(&total); err != nil {
		t.Fatal(err)
	}
	var wantTotal int64
	for _, v := range want {
		wantTotal += v
	}
	if total != wantTotal {
		t.Fatalf("seats_reserved_per_conference total %d, fold says %d", total, wantTotal)
	}
	t.Logf("%d events projected; %d conference/seat-type rows match the fold; %d seats reserved", len(evs), len(want), total)
}

func compareMaps(t *testing.T, what string, want, got map[string]int64) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: want %d got %d", k, v, got[k]))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %d", k, v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = diffs[:20]
		}
		t.Fatalf("%s differ from the fold of the events (%d keys):\n%v", what, len(want), diffs)
	}
}
