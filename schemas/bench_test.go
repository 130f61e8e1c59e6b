package schemas_test

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/schemas"
)

func benchEvent() schemas.Event {
	return schemas.NewEvent(&events.SeatsReserved{
		ConferenceID: "conf-1", ReservationID: "0191d7c2-5b8e-7c1a-9f1e-3b2a1c0d9e8f", SeatType: "standard",
		Quantity: 2, AttendeeEmail: "ann@example.com", ReservedAt: t0,
	}, schemas.At(occurred))
}

func benchCodecs(b *testing.B) map[string]*schemas.Codec {
	cat, _, _ := registered(b)
	soe := newCodec(b)
	_, cl, _ := registered(b)
	conf, err := schemas.NewCodec(cat, schemas.WithRegistry(cl), schemas.WithBindings(events.Bindings()...))
	if err != nil {
		b.Fatal(err)
	}
	return map[string]*schemas.Codec{"single-object": soe, "confluent": conf}
}

func BenchmarkEncode(b *testing.B) {
	ctx := context.Background()
	for _, name := range []string{"single-object", "confluent"} {
		c := benchCodecs(b)[name]
		ev := benchEvent()
		if _, err := c.Encode(ctx, ev); err != nil { // warm the registry ID cache
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Encode(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	ctx := context.Background()
	for _, name := range []string{"single-object", "confluent"} {
		c := benchCodecs(b)[name]
		rec, err := c.Encode(ctx, benchEvent())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Decode(ctx, rec); err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/current", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decode(ctx, rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// An old version: resolution (renamed field, added field) plus upcaster.
	c := newCodec(b)
	old := fixtureRecord(b, "conference.SeatsReserved", 1, occurred.Format(time.RFC3339Nano))
	b.Run("single-object/v1-upcast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Decode(ctx, old); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("single-object/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Decode(ctx, old); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkDecodeGenericVsTyped: the cost of a generic event (*Record,
// hamba/avro's map form) against a bound Go struct, for the same bytes —
// a small demo event and a rich foreign one (nested records, unions,
// decimals, arrays, maps).
func BenchmarkDecodeGenericVsTyped(b *testing.B) {
	ctx := context.Background()
	demo, err := events.Load()
	if err != nil {
		b.Fatal(err)
	}
	generic, err := schemas.NewCodec(demo)
	if err != nil {
		b.Fatal(err)
	}
	typed := newCodec(b)
	small, err := typed.Encode(ctx, benchEvent())
	if err != nil {
		b.Fatal(err)
	}

	type address struct {
		City string  `avro:"city"`
		Zip  *string `avro:"zip"`
	}
	type customer struct {
		Name    string   `avro:"name"`
		Address *address `avro:"address"`
	}
	type item struct {
		SKU string `avro:"sku"`
		Qty int    `avro:"qty"`
	}
	type order struct {
		OrderID   string            `avro:"order_id"`
		Customer  customer          `avro:"customer"`
		Amount    *big.Rat          `avro:"amount"`
		PlacedOn  time.Time         `avro:"placed_on"`
		PlacedAt  time.Time         `avro:"placed_at"`
		Count     int64             `avro:"count"`
		Comment   *string           `avro:"comment"`
		Items     []item            `avro:"items"`
		Tags      map[string]string `avro:"tags"`
		Status    string            `avro:"status"`
		Checksum  [4]byte           `avro:"checksum"`
		Channel   string            `avro:"channel"`
		UpdatedAt time.Time         `avro:"updated_at"`
		// unit_price (a nullable fixed decimal) left out: hamba/avro
		// reads fixed decimals into *big.Rat only generically.
	}
	cat := acme(b)
	acmeGeneric, err := schemas.NewCodec(cat)
	if err != nil {
		b.Fatal(err)
	}
	acmeTyped, err := schemas.NewCodec(cat, schemas.WithBindings(schemas.Bind[order]("com.acme.orders.OrderPlaced")))
	if err != nil {
		b.Fatal(err)
	}
	rich := &kgo.Record{Topic: "acme.orders", Key: []byte(orderID),
		Value: soeValue(b, cat.Type("com.acme.orders.OrderPlaced").Current().Schema, acmeOrder(2))}
	if ev, err := acmeTyped.Decode(ctx, rich); err != nil || ev.Payload.(*order).Customer.Address == nil {
		b.Fatalf("typed rich decode: %v", err)
	}

	for _, bc := range []struct {
		name  string
		codec *schemas.Codec
		rec   *kgo.Record
	}{
		{"demo-SeatsReserved/typed", typed, small},
		{"demo-SeatsReserved/generic", generic, small},
		{"acme-OrderPlaced/typed", acmeTyped, rich},
		{"acme-OrderPlaced/generic", acmeGeneric, rich},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.codec.Decode(ctx, bc.rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
