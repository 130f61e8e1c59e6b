package schemas_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/schemas"
)

func newCodec(t testing.TB) *schemas.Codec {
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

// exported is ev without what Decode adds beyond the producer's event
// (the envelope kind and the bytes behind the payload).
func exported(ev schemas.Event) schemas.Event {
	return schemas.Event{Type: ev.Type, Version: ev.Version, ID: ev.ID, AggregateID: ev.AggregateID, OccurredAt: ev.OccurredAt,
		CorrelationID: ev.CorrelationID, CausationID: ev.CausationID, Source: ev.Source, Subject: ev.Subject, Payload: ev.Payload}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := newCodec(t)
	cause := schemas.NewEvent(&events.OrderPlaced{OrderID: "o-9", CustomerID: "cu", Currency: "EUR", ItemCount: 1, PlacedAt: t0, Channel: "web"})
	in := schemas.NewEvent(&events.StockReserved{OrderID: "o-9", ReservationID: "s", Lines: []events.StockLine{{ProductID: "p", Quantity: 1}}, ReservedAt: t0},
		schemas.CausedBy(cause), schemas.At(occurred))
	rec, err := c.Encode(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Topic != "shop.orders" || string(rec.Key) != "o-9" || rec.Value[0] != 0xC3 || rec.Value[1] != 0x01 {
		t.Fatalf("record: topic %q key %q value %x", rec.Topic, rec.Key, rec.Value[:2])
	}
	out, err := c.Decode(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	in.Version = 1
	if !reflect.DeepEqual(in, exported(out)) {
		t.Fatalf("round trip\n got %+v\nwant %+v", out, in)
	}
	if out.CorrelationID != cause.ID || out.CausationID != cause.ID {
		t.Fatalf("correlation %q causation %q, want both %q", out.CorrelationID, out.CausationID, cause.ID)
	}
}

func TestEncodeErrors(t *testing.T) {
	ctx := context.Background()
	c := newCodec(t)
	cases := []struct {
		name string
		ev   schemas.Event
		want error
	}{
		{"empty aggregate", schemas.NewEvent(&events.OrderPlaced{Currency: "EUR"}), schemas.ErrEmptyAggregateID},
		{"unknown type", schemas.Event{Type: "shop.Nope", AggregateID: "o", Payload: map[string]any{}}, schemas.ErrUnknownEventType},
		{"payload of another type", schemas.Event{Type: "shop.OrderPlaced", Payload: &events.OrderCancelled{OrderID: "o"}}, schemas.ErrSchemaMismatch},
		{"not a catalog struct", schemas.Event{Type: "shop.OrderPlaced", AggregateID: "o", Payload: map[string]any{"order_id": "o"}}, schemas.ErrSchemaMismatch},
		{"nil payload", schemas.Event{Type: "shop.OrderPlaced", AggregateID: "o"}, schemas.ErrSchemaMismatch},
		{"key differs from payload", schemas.Event{AggregateID: "o-2", Payload: &events.OrderCancelled{OrderID: "o-1"}}, schemas.ErrSchemaMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Encode(ctx, tc.ev)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// A struct value (not a pointer) is accepted.
	if _, err := c.Encode(ctx, schemas.Event{Payload: events.OrderCancelled{OrderID: "o-1", Reason: "x"}}); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeErrors(t *testing.T) {
	ctx := context.Background()
	c := newCodec(t)
	good, err := c.Encode(ctx, schemas.NewEvent(&events.SeatsReserved{ConferenceID: "c", ReservationID: "r", SeatType: "vip", Quantity: 1, ReservedAt: t0}))
	if err != nil {
		t.Fatal(err)
	}
	good.Topic, good.Partition, good.Offset = "conference.seats", 4, 1234
	mutate := func(f func(r *kgo.Record)) *kgo.Record {
		r := *good
		r.Headers = append([]kgo.RecordHeader(nil), good.Headers...)
		r.Value = append([]byte(nil), good.Value...)
		f(&r)
		return &r
	}
	setHeader := func(r *kgo.Record, key, val string) {
		for i := range r.Headers {
			if r.Headers[i].Key == key {
				r.Headers[i].Value = []byte(val)
			}
		}
	}
	dropHeader := func(r *kgo.Record, key string) {
		hs := r.Headers[:0]
		for _, h := range r.Headers {
			if h.Key != key {
				hs = append(hs, h)
			}
		}
		r.Headers = hs
	}
	cases := []struct {
		name string
		rec  *kgo.Record
		want error
	}{
		{"no type header", mutate(func(r *kgo.Record) { dropHeader(r, schemas.HeaderType) }), schemas.ErrMissingHeader},
		{"no event id", mutate(func(r *kgo.Record) { dropHeader(r, schemas.HeaderEventID) }), schemas.ErrMissingHeader},
		{"bad occurred-at", mutate(func(r *kgo.Record) { setHeader(r, schemas.HeaderOccurredAt, "yesterday") }), schemas.ErrInvalidHeader},
		{"no key, aggregate header differs from the aggregate field", mutate(func(r *kgo.Record) { r.Key = nil; setHeader(r, schemas.HeaderAggregateID, "other") }), schemas.ErrAggregateMismatch},
		{"unknown type", mutate(func(r *kgo.Record) { setHeader(r, schemas.HeaderType, "conference.SeatsStolen") }), schemas.ErrUnknownEventType},
		{"unknown fingerprint", mutate(func(r *kgo.Record) { r.Value[5] ^= 0xFF }), schemas.ErrUnknownSchema},
		{"registry id without registry", mutate(func(r *kgo.Record) { r.Value = append([]byte{0, 0, 0, 0, 7}, r.Value[10:]...) }), schemas.ErrUnknownSchema},
		{"truncated body", mutate(func(r *kgo.Record) { r.Value = r.Value[:14] }), schemas.ErrMalformed},
		{"trailing bytes", mutate(func(r *kgo.Record) { r.Value = append(r.Value, 1, 2, 3) }), schemas.ErrMalformed},
		{"unknown framing", mutate(func(r *kgo.Record) { r.Value[0] = 'x' }), schemas.ErrMalformed},
		{"empty value", mutate(func(r *kgo.Record) { r.Value = nil }), schemas.ErrMalformed},
		{"type header lies", mutate(func(r *kgo.Record) { setHeader(r, schemas.HeaderType, "conference.SeatsAdded") }), schemas.ErrMalformed},
		{"key differs from payload", mutate(func(r *kgo.Record) { r.Key = []byte("other"); dropHeader(r, schemas.HeaderAggregateID) }), schemas.ErrAggregateMismatch},
		{"upcast without occurred-at source", fixtureRecord(t, "conference.SeatsReserved", 1, "0001-01-01T00:00:00Z"), schemas.ErrUpcast},
	}
	kinds := []error{schemas.ErrMissingHeader, schemas.ErrInvalidHeader, schemas.ErrUnknownEventType, schemas.ErrUnknownSchema,
		schemas.ErrMalformed, schemas.ErrAggregateMismatch, schemas.ErrUpcast, schemas.ErrRegistryUnavailable}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Decode(ctx, tc.rec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			n := 0
			for _, k := range kinds {
				if errors.Is(err, k) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%v wraps %d error kinds, want exactly 1", err, n)
			}
			if tc.rec.Topic != "" && !strings.Contains(err.Error(), "@") {
				t.Fatalf("error does not say where: %v", err)
			}
			t.Log(err)
		})
	}
}

// fixtureRecord wraps a golden fixture in a record with the given occurred-at.
func fixtureRecord(t testing.TB, typ string, version int, occurredAt string) *kgo.Record {
	t.Helper()
	for _, f := range fixtures() {
		if f.typ == typ && f.version == version {
			return &kgo.Record{
				Topic: "conference.seats", Partition: 2, Offset: 99,
				Key:   []byte(f.want.AggregateID()),
				Value: readFixture(t, typ, version),
				Headers: []kgo.RecordHeader{
					{Key: schemas.HeaderType, Value: []byte(typ)},
					{Key: schemas.HeaderEventID, Value: []byte("e")},
					{Key: schemas.HeaderOccurredAt, Value: []byte(occurredAt)},
				},
			}
		}
	}
	t.Fatalf("no fixture %s v%d", typ, version)
	return nil
}

func TestDecodeConcurrent(t *testing.T) {
	ctx := context.Background()
	c := newCodec(t)
	recs := make([]*kgo.Record, 0, 19)
	for _, f := range fixtures() {
		recs = append(recs, fixtureRecord(t, f.typ, f.version, occurred.Format(time.RFC3339Nano)))
	}
	done := make(chan error, 8)
	for range 8 {
		go func() {
			for range 200 {
				for _, r := range recs {
					if _, err := c.Decode(ctx, r); err != nil {
						done <- err
						return
					}
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
