package schemas_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/schemas"
)

// fuzzHeaders packs record headers as key\x00value\x00… so the fuzzer can
// mutate them like any byte string.
func fuzzHeaders(kv ...string) []byte {
	var b bytes.Buffer
	for _, s := range kv {
		b.WriteString(s)
		b.WriteByte(0)
	}
	return b.Bytes()
}

func unpackHeaders(b []byte) []kgo.RecordHeader {
	parts := bytes.Split(b, []byte{0})
	var hs []kgo.RecordHeader
	for i := 0; i+1 < len(parts); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: string(parts[i]), Value: parts[i+1]})
	}
	return hs
}

// FuzzDecode feeds arbitrary records (topic, key, value, headers) to two
// codecs: the demo catalog with Go bindings (Reel headers, single-object
// framing) and a foreign catalog decoded generically, with a registry
// (Confluent framing, CloudEvents and derived envelopes, plain topics).
// Decode must never panic, and every failure must be a *DecodeError; an
// event it accepts must have a type and a readable generic view.
func FuzzDecode(f *testing.F) {
	ctx := context.Background()
	demo := newCodec(f)
	_, cl := registry(f, sr.CompatBackward)
	cat := acme(f)
	foreign := acmeCodec(f, schemas.WithRegistry(cl))
	v2 := cat.Type("com.acme.orders.OrderPlaced").Versions[1]
	id := mustRegister(f, cl, "acme.orders-value", v2.Text)

	for _, ev := range []schemas.Event{
		schemas.NewEvent(&events.OrderPlaced{OrderID: "o-1", CustomerID: "c", Currency: "EUR", ItemCount: 2, PlacedAt: t0, Channel: "web"}),
		schemas.NewEvent(&events.StockReserved{OrderID: "o-1", ReservationID: "r", Lines: []events.StockLine{{ProductID: "p", Quantity: 1}}, ReservedAt: t0}),
	} {
		r, err := demo.Encode(ctx, ev)
		if err != nil {
			f.Fatal(err)
		}
		var kv []string
		for _, h := range r.Headers {
			kv = append(kv, h.Key, string(h.Value))
		}
		f.Add(r.Topic, r.Key, r.Value, fuzzHeaders(kv...))
		f.Add(r.Topic, r.Key, r.Value, []byte(nil)) // derived envelope
	}
	good := confluent(f, id, v2.Schema, acmeOrder(2))
	f.Add("acme.orders", []byte(orderID), good, []byte(nil))
	f.Add("acme.orders", []byte(orderID), good, fuzzHeaders("ce_type", "acme.order.placed", "ce_id", "e-1", "ce_time", "2024-05-02T08:00:00Z", "ce_specversion", "1.0"))
	f.Add("acme.orders", []byte(orderID), soeValue(f, v2.Schema, acmeOrder(2)), fuzzHeaders("reel.type", "com.acme.orders.OrderPlaced", "reel.version", "2"))
	f.Add("acme.payments.legacy", []byte("p-1"), []byte{2, 'p', 0}, []byte(nil))
	f.Add("acme.orders", []byte{}, []byte{0, 0, 0, 0}, fuzzHeaders("ce_type"))

	f.Fuzz(func(t *testing.T, topic string, key, value, headers []byte) {
		r := &kgo.Record{Topic: topic, Key: key, Value: value, Headers: unpackHeaders(headers), Timestamp: recTime, Offset: 3}
		for _, c := range []*schemas.Codec{demo, foreign} {
			ev, err := c.Decode(ctx, r)
			if err != nil {
				var de *schemas.DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("decode failure is not a *DecodeError: %T %v", err, err)
				}
				continue
			}
			if ev.Type == "" {
				t.Fatalf("decoded event without a type: %+v", ev)
			}
			if _, err := ev.Record(); err != nil {
				t.Fatalf("decoded event %s has no generic view: %v", ev.Type, err)
			}
		}
	})
}
