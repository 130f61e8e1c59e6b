package schemas_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/soe"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/schemas"
)

const orderID = "0191d7c2-5b8e-7c1a-9f1e-3b2a1c0d9e8f"

var (
	day     = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	micros  = time.Date(2024, 5, 1, 10, 0, 0, 123456000, time.UTC)
	recTime = time.Date(2024, 5, 2, 8, 0, 0, 0, time.UTC)
)

// acmeOrder is OrderPlaced in hamba/avro's generic form, as a producer
// with no Go struct writes it: v1 or v2.
func acmeOrder(version int) map[string]any {
	m := map[string]any{
		"order_id": orderID,
		"customer": map[string]any{"name": "Ann", "address": map[string]any{
			"com.acme.orders.Address": map[string]any{"city": "Berlin", "zip": map[string]any{"string": "10115"}}}},
		"amount":    big.NewRat(1234, 100),
		"placed_on": day,
		"placed_at": t0,
		"items":     []any{map[string]any{"sku": "a-1", "qty": 2}, map[string]any{"sku": "b-2", "qty": 1}},
		"tags":      map[string]any{"gift": "yes"},
		"status":    "PAID",
		"checksum":  [4]byte{0xde, 0xad, 0xbe, 0xef},
	}
	if version == 1 {
		m["count"] = 3
		m["note"] = map[string]any{"string": "leave at the door"}
		return m
	}
	m["count"] = int64(5_000_000_000)
	m["comment"] = map[string]any{"string": "ring twice"}
	m["channel"] = "app"
	m["updated_at"] = micros
	m["unit_price"] = map[string]any{"com.acme.orders.Price": big.NewRat(19990, 1000)}
	return m
}

func acmeCodec(t testing.TB, opts ...schemas.CodecOpt) *schemas.Codec {
	t.Helper()
	c, err := schemas.NewCodec(acme(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// soeValue encodes v with hamba/avro's own single-object codec — what a Go
// (or Java BinaryMessageEncoder) producer writes.
func soeValue(t testing.TB, s avro.Schema, v any) []byte {
	t.Helper()
	c, err := soe.NewCodec(s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every Avro type decodes into a generic record with its type kept; a
// derived envelope (no headers at all) takes the record's name, key, time
// and position.
func TestGenericDecodeDerivedEnvelope(t *testing.T) {
	cat := acme(t)
	c := acmeCodec(t)
	v2 := cat.Type("com.acme.orders.OrderPlaced").Versions[1]
	rec := &kgo.Record{Topic: "acme.orders", Partition: 3, Offset: 42, Timestamp: recTime,
		Key: []byte(orderID), Value: soeValue(t, v2.Schema, acmeOrder(2))}
	ev, err := c.Decode(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "com.acme.orders.OrderPlaced" || ev.Version != 2 || ev.ID != "acme.orders/3/42" ||
		ev.AggregateID != orderID || !ev.OccurredAt.Equal(recTime) || ev.Envelope != schemas.EnvelopeDerived {
		t.Fatalf("envelope %+v", ev)
	}
	r, ok := ev.Payload.(*schemas.Record)
	if !ok {
		t.Fatalf("payload %T, want *schemas.Record", ev.Payload)
	}
	checks := map[string]any{
		"order_id":              orderID,
		"customer.name":         "Ann",
		"customer.address.city": "Berlin",
		"customer.address.zip":  "10115",
		"placed_on":             day,
		"placed_at":             t0,
		"updated_at":            micros,
		"count":                 int64(5_000_000_000),
		"comment":               "ring twice",
		"status":                "PAID",
		"channel":               "app",
		"checksum":              [4]byte{0xde, 0xad, 0xbe, 0xef},
	}
	for path, want := range checks {
		got, err := r.Lookup(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if tm, ok := want.(time.Time); ok {
			if g, ok := got.(time.Time); !ok || !g.Equal(tm) {
				t.Errorf("%s = %#v, want %v", path, got, tm)
			}
			continue
		}
		if got != want {
			t.Errorf("%s = %#v (%T), want %#v (%T)", path, got, got, want, want)
		}
	}
	if amt, ok := r.Get("amount").(*big.Rat); !ok || amt.Cmp(big.NewRat(1234, 100)) != 0 {
		t.Errorf("amount = %#v, want 12.34 as *big.Rat", r.Get("amount"))
	}
	if p, ok := r.Get("unit_price").(*big.Rat); !ok || p.FloatString(3) != "19.990" {
		t.Errorf("unit_price (union of a fixed decimal) = %#v", r.Get("unit_price"))
	}
	items, ok := r.Get("items").([]any)
	if !ok || len(items) != 2 {
		t.Fatalf("items = %#v", r.Get("items"))
	}
	if it, ok := items[1].(*schemas.Record); !ok || it.Get("sku") != "b-2" || it.Get("qty") != 1 {
		t.Errorf("items[1] = %#v", items[1])
	}
	if tags, ok := r.Get("tags").(map[string]any); !ok || tags["gift"] != "yes" {
		t.Errorf("tags = %#v", r.Get("tags"))
	}
	if _, err := r.Lookup("customer.phone"); !errors.Is(err, schemas.ErrNoField) {
		t.Errorf("missing field: %v", err)
	}

	plain := r.Plain()
	if plain["customer"].(map[string]any)["address"].(map[string]any)["zip"] != "10115" {
		t.Errorf("Plain: %#v", plain["customer"])
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"amount":12.34`, `"unit_price":19.990`, `"zip":"10115"`, `"checksum":"3q2+7w=="`, `"placed_at":"2024-05-01T10:00:00Z"`, `"comment":"ring twice"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
}

// An old version is read as the current one by schema resolution:
// promotion (int→long), a renamed field (alias), defaults for added fields.
func TestGenericDecodeOldVersion(t *testing.T) {
	cat := acme(t)
	c := acmeCodec(t)
	v1 := cat.Type("com.acme.orders.OrderPlaced").Versions[0]
	rec := &kgo.Record{Topic: "acme.orders", Key: []byte(orderID), Value: soeValue(t, v1.Schema, acmeOrder(1))}
	ev, err := c.Decode(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	r := ev.Payload.(*schemas.Record)
	if ev.Version != 1 || r.Get("count") != int64(3) || r.Get("comment") != "leave at the door" ||
		r.Get("channel") != "web" || r.Get("unit_price") != nil {
		t.Fatalf("v1 as v2: version %d count %#v comment %#v channel %#v unit_price %#v",
			ev.Version, r.Get("count"), r.Get("comment"), r.Get("channel"), r.Get("unit_price"))
	}
	if r.Schema() != c.Catalog().Type("com.acme.orders.OrderPlaced").Current().Schema {
		t.Fatal("the record's schema is not the current version")
	}
}

// Typed access stays possible without a binding: As decodes the same
// bytes into a struct; a bound struct is the Payload itself.
func TestTypedAccess(t *testing.T) {
	type item struct {
		SKU string `avro:"sku"`
		Qty int    `avro:"qty"`
	}
	type order struct {
		OrderID string `avro:"order_id"`
		Count   int64  `avro:"count"`
		Items   []item `avro:"items"`
		Channel string `avro:"channel"`
	}
	cat := acme(t)
	v2 := cat.Type("com.acme.orders.OrderPlaced").Versions[1]
	rec := &kgo.Record{Topic: "acme.orders", Key: []byte(orderID), Value: soeValue(t, v2.Schema, acmeOrder(2))}

	ev, err := acmeCodec(t).Decode(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	o, err := schemas.As[order](ev)
	if err != nil {
		t.Fatal(err)
	}
	if o.OrderID != orderID || o.Count != 5_000_000_000 || len(o.Items) != 2 || o.Items[0].SKU != "a-1" || o.Channel != "app" {
		t.Fatalf("As: %+v", o)
	}

	bound := acmeCodec(t, schemas.WithBindings(schemas.Bind[order]("com.acme.orders.OrderPlaced")))
	ev, err = bound.Decode(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := ev.Payload.(*order); !ok || p.Count != 5_000_000_000 {
		t.Fatalf("bound payload %#v", ev.Payload)
	}
	r, err := ev.Record()
	if err != nil || r.Get("channel") != "app" {
		t.Fatalf("Record of a bound event: %v %v", r, err)
	}
	if _, err := schemas.NewCodec(cat, schemas.WithBindings(schemas.Bind[order]("com.acme.Nope"))); err == nil {
		t.Fatal("binding an unknown type was accepted")
	}
}

// A generic upcaster sees the *Record of an old version and may set fields.
func TestGenericUpcaster(t *testing.T) {
	cat := acme(t)
	up := schemas.Binding{Type: "com.acme.orders.OrderPlaced", Upcast: func(v int, ev *schemas.Event) error {
		return ev.Payload.(*schemas.Record).Set("channel", "legacy-v"+string(rune('0'+v)))
	}}
	c := acmeCodec(t, schemas.WithBindings(up))
	v1 := cat.Type("com.acme.orders.OrderPlaced").Versions[0]
	ev, err := c.Decode(context.Background(), &kgo.Record{Topic: "acme.orders", Key: []byte(orderID), Value: soeValue(t, v1.Schema, acmeOrder(1))})
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.Payload.(*schemas.Record).Get("channel"); got != "legacy-v1" {
		t.Fatalf("channel %v", got)
	}
}

// Generic payloads encode too: a *Record or a map in generic form.
func TestEncodeGeneric(t *testing.T) {
	c := acmeCodec(t)
	ctx := context.Background()
	rec, err := c.Encode(ctx, schemas.Event{Type: "com.acme.orders.OrderPlaced", Payload: acmeOrder(2)})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Topic != "acme.orders" || string(rec.Key) != orderID {
		t.Fatalf("topic %s key %s", rec.Topic, rec.Key)
	}
	ev, err := c.Decode(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Envelope != schemas.EnvelopeReel || ev.Payload.(*schemas.Record).Get("channel") != "app" {
		t.Fatalf("%+v", ev)
	}
	bad := acmeOrder(2)
	delete(bad, "customer")
	if _, err := c.Encode(ctx, schemas.Event{Type: "com.acme.orders.OrderPlaced", Payload: bad}); !errors.Is(err, schemas.ErrSchemaMismatch) {
		t.Fatalf("missing field: %v", err)
	}
	if _, err := c.Encode(ctx, schemas.Event{Type: "com.acme.orders.OrderPlaced", AggregateID: "other", Payload: acmeOrder(2)}); !errors.Is(err, schemas.ErrSchemaMismatch) {
		t.Fatalf("aggregate differs from field: %v", err)
	}
}
