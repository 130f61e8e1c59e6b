package shop_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/producers/shop"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/schemas"
)

func TestSagaCompensation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := testenv.Kafka(t)
	cat, _ := events.Load()
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seqs := map[string][]string{}
	corr := map[string]map[string]bool{}
	st, err := shop.Run(ctx, shop.Config{
		Codec: codec, Kafka: []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation()},
		Orders: 60, Rate: -1, PaymentFailShare: 0.3, StockFailShare: 0.2, Seed: 7,
		OnPublish: func(ev schemas.Event, pos producers.Position) {
			mu.Lock()
			defer mu.Unlock()
			seqs[ev.AggregateID] = append(seqs[ev.AggregateID], strings.TrimPrefix(ev.Type, "shop."))
			if corr[ev.AggregateID] == nil {
				corr[ev.AggregateID] = map[string]bool{}
			}
			corr[ev.AggregateID][ev.CorrelationID] = true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	if st.Orders != 60 || st.Open != 0 || st.Confirmed+st.OutOfStock+st.PaymentFailed != 60 {
		t.Fatalf("stats %+v", st)
	}
	if st.OutOfStock == 0 || st.PaymentFailed == 0 || st.Confirmed == 0 {
		t.Fatalf("not every path taken: %+v", st)
	}
	tails := map[string][]string{
		"confirmed":      {"StockReserved", "PaymentConfirmed", "OrderConfirmed"},
		"payment_failed": {"StockReserved", "PaymentFailed", "StockReleased", "OrderCancelled"},
		"out_of_stock":   {"StockReservationFailed", "OrderCancelled"},
	}
	got := map[string]int{}
	for id, seq := range seqs {
		if seq[0] != "OrderPlaced" {
			t.Fatalf("%s starts with %s", id, seq[0])
		}
		i := 1
		for i < len(seq) && seq[i] == "OrderItemAdded" {
			i++
		}
		matched := ""
		for name, tail := range tails {
			if slices.Equal(seq[i:], tail) {
				matched = name
			}
		}
		if matched == "" || i == 1 {
			t.Fatalf("%s: unexpected sequence %v", id, seq)
		}
		got[matched]++
		if len(corr[id]) != 1 {
			t.Fatalf("%s: %d correlation IDs, want the saga's one", id, len(corr[id]))
		}
	}
	if got["confirmed"] != st.Confirmed || got["payment_failed"] != st.PaymentFailed || got["out_of_stock"] != st.OutOfStock {
		t.Fatalf("sequences %v vs stats %+v", got, st)
	}
	if st.Published["shop.StockReleased"] != st.PaymentFailed || st.Published["shop.OrderCancelled"] != st.PaymentFailed+st.OutOfStock {
		t.Fatalf("counts %v", st.Published)
	}
}
