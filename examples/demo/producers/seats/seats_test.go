package seats_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/producers/seats"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/schemas"
)

func TestRunRefusesOverbooking(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := testenv.Kafka(t)
	cat, _ := events.Load()
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	txid := "seats-test-" + time.Now().Format("150405.000000000")
	kafka := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation()}

	// Fold the published events independently: availability per seat type.
	avail := map[string]int64{}
	res := map[string]events.SeatsReserved{}
	var n int
	st, err := seats.Run(ctx, seats.Config{
		Codec: codec, Kafka: kafka, TransactionalID: txid,
		Conferences: 2, SeatTypes: []string{"vip"}, SeatsPerType: 6, Rate: -1, Commands: 40, Seed: 42,
		OnPublish: func(ev schemas.Event, pos producers.Position) {
			n++
			if pos.Topic != seats.Topic {
				t.Errorf("published to %s", pos.Topic)
			}
			key := ev.AggregateID
			switch p := ev.Payload.(type) {
			case *events.SeatsAdded:
				avail[key] += p.Quantity
			case *events.SeatsReserved:
				avail[key] -= int64(p.Quantity)
				res[p.ReservationID] = *p
			case *events.SeatReservationCancelled:
				avail[key] += int64(res[p.ReservationID].Quantity)
			}
			if avail[key] < 0 {
				t.Errorf("%s overbooked: %d", key, avail[key])
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	if st.Commands != 40 || st.Overbooked == 0 || st.Published.Total() != n {
		t.Fatalf("stats %+v, hook saw %d", st, n)
	}
	if st.Published["conference.SeatReservationCancelled"] == 0 {
		t.Fatalf("no cancellations in %+v", st.Published)
	}

	// A new handler (the next deploy) rebuilds the same availability from
	// Kafka and keeps refusing.
	h, err := seats.OpenHandler(ctx, codec, txid, kafka...)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if testenv.RealKafka() {
		return // other runs may have used conf-1/conf-2 on a shared topic
	}
	for _, c := range []string{"conf-1", "conf-2"} {
		if got := h.Available(c, "vip"); got != avail[c] {
			t.Fatalf("%s: rebuilt %d available, fold says %d", c, got, avail[c])
		}
		_, err := h.Reserve(ctx, c, "too-many", "vip", int(avail[c])+1, "x@example.com")
		if !errors.Is(err, seats.ErrOverbooked) {
			t.Fatalf("%s: reserve beyond availability: %v", c, err)
		}
	}
}
