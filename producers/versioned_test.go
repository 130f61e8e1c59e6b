package producers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/schemas"
)

func openVersioned(t *testing.T, brokers []string, txid string, fold func(schemas.Event)) *producers.Versioned {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := producers.OpenVersioned(ctx, producers.VersionedConfig{
		Codec: codec(t), Topic: "conference.seats", TransactionalID: txid, Fold: fold,
		Kafka: []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func seats(conf, res string, q int) schemas.Event {
	return schemas.NewEvent(&events.SeatsReserved{ConferenceID: conf, ReservationID: res, SeatType: "standard", Quantity: q, ReservedAt: time.Now()})
}

func TestStaleWriterRejected(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	txid := "test-" + time.Now().Format("150405.000000000")
	conf := "conf-" + txid
	a := openVersioned(t, brokers, txid, nil)

	if _, err := a.Append(ctx, conf, 0, seats(conf, "r1", 1), seats(conf, "r2", 2)); err != nil {
		t.Fatal(err)
	}
	if v := a.Version(conf); v != 2 {
		t.Fatalf("version %d, want 2", v)
	}
	// Two commands loaded the aggregate at version 2; the second is stale.
	if _, err := a.Append(ctx, conf, 2, seats(conf, "r3", 1)); err != nil {
		t.Fatal(err)
	}
	_, err := a.Append(ctx, conf, 2, seats(conf, "r4", 1))
	if !errors.Is(err, producers.ErrConcurrencyConflict) {
		t.Fatalf("stale expected version: got %v", err)
	}
	t.Log(err)

	// A new instance takes over: it rebuilds version 3 from the topic and
	// fences the old instance, whose next append is rejected.
	folded := 0
	b := openVersioned(t, brokers, txid, func(ev schemas.Event) {
		if ev.AggregateID == conf {
			folded++
		}
	})
	if v := b.Version(conf); v != 3 || folded != 3 {
		t.Fatalf("rebuilt version %d (folded %d), want 3", v, folded)
	}
	_, err = a.Append(ctx, conf, 3, seats(conf, "r5", 1))
	if !errors.Is(err, producers.ErrFenced) || !errors.Is(err, producers.ErrConcurrencyConflict) {
		t.Fatalf("zombie writer: got %v", err)
	}
	t.Log(err)
	if _, err := b.Append(ctx, conf, 3, seats(conf, "r5", 1)); err != nil {
		t.Fatal(err)
	}
	// Invalid events are rejected before the transaction.
	if _, err := b.Append(ctx, conf, 4, seats("other", "x", 1)); !errors.Is(err, schemas.ErrSchemaMismatch) {
		t.Fatalf("foreign aggregate: %v", err)
	}
	if _, err := b.Append(ctx, conf, 4, schemas.NewEvent(order("o"))); err == nil {
		t.Fatal("event of another topic accepted")
	}
	if v := b.Version(conf); v != 4 {
		t.Fatalf("version %d, want 4", v)
	}
}
