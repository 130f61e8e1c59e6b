package schemas_test

import (
	"context"
	"testing"
	"time"

	"github.com/reel-dev/reel/schemas"
)

func benchEvent() schemas.Event {
	return schemas.NewEvent(&schemas.SeatsReserved{
		ConferenceID: "conf-1", ReservationID: "0191d7c2-5b8e-7c1a-9f1e-3b2a1c0d9e8f", SeatType: "standard",
		Quantity: 2, AttendeeEmail: "ann@example.com", ReservedAt: t0,
	}, schemas.At(occurred))
}

func benchCodecs(b *testing.B) map[string]*schemas.Codec {
	cat, _, _ := registered(b)
	soe := newCodec(b)
	_, cl, _ := registered(b)
	conf, err := schemas.NewCodec(cat, schemas.WithRegistry(cl), schemas.WithBindings(schemas.DemoBindings()...))
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
