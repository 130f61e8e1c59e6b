package projectors_test

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/reel-dev/reel/examples/demo/projectors/eventlog"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/schemas"
)

// TestForeignProducerProjected: a team's own catalog (no Go types) and a
// producer with a stock Confluent serializer and no Reel headers. Reel
// projects its events generically; a record of a type nobody declared
// parks its aggregate with a reason, and other aggregates keep flowing.
func TestForeignProducerProjected(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	const topic = "acme.orders"
	createTopic(t, brokers, topic, 2)

	reg := srfake.New()
	defer reg.Close()
	srcl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := schemas.LoadDir("../schemas/testdata/acme")
	if err != nil {
		t.Fatal(err)
	}
	v2 := cat.Type("com.acme.orders.OrderPlaced").Current()
	id := register(t, srcl, topic+"-value", v2.Text)
	other := `{"type":"record","name":"Thing","namespace":"com.other","fields":[{"name":"x","type":"int"}]}`
	otherID := register(t, srcl, "things-value", other)

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	last := map[int32]int64{}
	send := func(key string, value []byte) {
		res := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: value})
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		r := res[0].Record
		last[r.Partition] = max(last[r.Partition], r.Offset)
	}
	const orders = 20
	for i := range orders {
		key := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		if i == 7 {
			send(key, framed(t, otherID, avro.MustParse(other), map[string]any{"x": 1}))
		}
		send(key, framed(t, id, v2.Schema, order(key, i)))
	}

	codec, err := schemas.NewCodec(cat, schemas.WithRegistry(srcl))
	if err != nil {
		t.Fatal(err)
	}
	p := eventlog.Log(topic)
	r, err := projectors.NewRunner(p, ch.Conn, codec, projectors.Brokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	waitApplied(t, ch, p.Name, topic, last, done)

	var n uint64
	var types, ids string
	if err := ch.Conn.QueryRow(ctx, "SELECT count(), arrayStringConcat(groupUniqArray(event_type)), any(event_id) FROM event_log").Scan(&n, &types, &ids); err != nil {
		t.Fatal(err)
	}
	if n != orders-1 || types != "com.acme.orders.OrderPlaced" || !strings.HasPrefix(ids, topic+"/") {
		t.Fatalf("event_log: %d rows of %q (id %q), want %d OrderPlaced with position IDs", n, types, ids, orders-1)
	}
	var payload string
	if err := ch.Conn.QueryRow(ctx, "SELECT payload FROM event_log WHERE aggregate_id = '00000000-0000-0000-0000-000000000003'").Scan(&payload); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"amount":1.75`, `"city":"Berlin"`, `"count":3`} {
		if !strings.Contains(payload, want) {
			t.Errorf("payload lacks %s: %s", want, payload)
		}
	}
	var parked uint64
	var reason, why string
	if err := ch.Conn.QueryRow(ctx, "SELECT count(), any(reason), anyIf(error, event_type = '') FROM event_log_parked WHERE aggregate_id = '00000000-0000-0000-0000-000000000007'").Scan(&parked, &reason, &why); err != nil {
		t.Fatal(err)
	}
	if parked != 2 || reason != projectors.ReasonDecode || !strings.Contains(why, "record com.other.Thing") {
		t.Fatalf("parked %d (%s): %q; want the unknown record and the event after it", parked, reason, why)
	}
}

func register(t *testing.T, cl *sr.Client, subject, schema string) int {
	t.Helper()
	ss, err := cl.CreateSchema(context.Background(), subject, sr.Schema{Schema: schema, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	return ss.ID
}

// framed is what a stock Confluent serializer writes: 0, the schema ID,
// the Avro body.
func framed(t *testing.T, id int, s avro.Schema, v any) []byte {
	t.Helper()
	body, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatal(err)
	}
	var h sr.ConfluentHeader
	b, err := h.AppendEncode(nil, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, body...)
}

func order(id string, i int) map[string]any {
	return map[string]any{
		"order_id":   id,
		"customer":   map[string]any{"name": "Ann", "address": map[string]any{"com.acme.orders.Address": map[string]any{"city": "Berlin", "zip": nil}}},
		"amount":     big.NewRat(int64(100+i*25), 100),
		"placed_on":  time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		"placed_at":  time.Date(2024, 5, 1, 10, i, 0, 0, time.UTC),
		"count":      int64(i),
		"comment":    nil,
		"items":      []any{map[string]any{"sku": "a", "qty": 1}},
		"tags":       map[string]any{},
		"status":     "NEW",
		"checksum":   [4]byte{},
		"channel":    "web",
		"updated_at": time.Date(2024, 5, 1, 10, i, 0, 0, time.UTC),
		"unit_price": nil,
	}
}
