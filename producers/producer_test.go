package producers_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/schemas"
)

func codec(t testing.TB) *schemas.Codec {
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

func open(t testing.TB, brokers []string) *producers.Producer {
	t.Helper()
	p, err := producers.Open(codec(t), kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// readAll consumes topic from the start until n records arrived.
func readAll(t testing.TB, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func order(id string) *events.OrderPlaced {
	return &events.OrderPlaced{OrderID: id, CustomerID: "cu", Currency: "EUR", ItemCount: 1, PlacedAt: time.Now().UTC().Truncate(time.Millisecond), Channel: "web"}
}

func TestPublish(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	p := open(t, brokers)
	id := "o-" + time.Now().Format("150405.000000000")
	evs := []schemas.Event{
		schemas.NewEvent(order(id)),
		schemas.NewEvent(&events.OrderItemAdded{OrderID: id, LineNo: 1, ProductID: "p", Quantity: 1, UnitPriceCents: 10, AddedAt: time.Now()}),
		schemas.NewEvent(&events.OrderCancelled{OrderID: id, Reason: "customer", CancelledAt: time.Now()}),
	}
	pos, err := p.Publish(ctx, evs...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pos {
		if pos[i].Topic != "shop.orders" || pos[i].Partition != pos[0].Partition || pos[i].Offset != pos[0].Offset+int64(i) {
			t.Fatalf("positions %v: one partition, consecutive offsets expected", pos)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var apos producers.Position
	var aerr error
	p.PublishAsync(ctx, schemas.NewEvent(&events.OrderConfirmed{OrderID: id, TotalCents: 1, Currency: "EUR", ConfirmedAt: time.Now()}), func(pos producers.Position, err error) {
		apos, aerr = pos, err
		wg.Done()
	})
	wg.Wait()
	if aerr != nil || apos.Partition != pos[0].Partition || apos.Offset <= pos[2].Offset {
		t.Fatalf("async: %v %v", apos, aerr)
	}
	if !testenv.RealKafka() {
		recs := readAll(t, brokers, "shop.orders", 4)
		c := codec(t)
		for i, r := range recs {
			ev, err := c.Decode(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if i < 3 && ev.ID != evs[i].ID {
				t.Fatalf("record %d is %s, want %s", i, ev.ID, evs[i].ID)
			}
		}
	}
}

func TestPublishValidatesBeforeSending(t *testing.T) {
	ctx := context.Background()
	brokers := testenv.Kafka(t)
	p := open(t, brokers)
	id := "v-" + time.Now().Format("150405.000000000")
	cases := []struct {
		name string
		bad  schemas.Event
		want error
	}{
		{"empty aggregate", schemas.NewEvent(order("")), schemas.ErrEmptyAggregateID},
		{"unknown type", schemas.Event{Type: "shop.Refunded", AggregateID: id, Payload: struct{ X int }{1}}, schemas.ErrUnknownEventType},
		{"payload mismatch", schemas.Event{Type: "shop.OrderPlaced", AggregateID: id, Payload: &events.OrderCancelled{OrderID: id}}, schemas.ErrSchemaMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pos, err := p.Publish(ctx, schemas.NewEvent(order(id)), tc.bad)
			if !errors.Is(err, tc.want) || pos != nil {
				t.Fatalf("got %v %v, want %v", pos, err, tc.want)
			}
			var got error
			p.PublishAsync(ctx, tc.bad, func(_ producers.Position, err error) { got = err })
			if !errors.Is(got, tc.want) {
				t.Fatalf("async: got %v, want %v", got, tc.want)
			}
		})
	}
	// Nothing of the rejected batches reached Kafka: the next event of the
	// aggregate is its first.
	pos, err := p.Publish(ctx, schemas.NewEvent(order(id)))
	if err != nil {
		t.Fatal(err)
	}
	if !testenv.RealKafka() {
		recs := readAll(t, brokers, "shop.orders", 1)
		if len(recs) != 1 || recs[0].Offset != pos[0].Offset {
			t.Fatalf("%d records on the topic, want exactly the valid one", len(recs))
		}
	}
}

func TestNewRefusesWeakClient(t *testing.T) {
	brokers := testenv.Fake(t).ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := producers.New(cl, codec(t)); err == nil {
		t.Fatal("acks=1 accepted")
	}
}
