package schemas_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata/fixtures from the fixture table")

var (
	t0       = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	occurred = time.Date(2024, 5, 1, 9, 30, 0, 123000000, time.UTC)
)

func ptr[T any](v T) *T { return &v }

// fixture is one event written with one (possibly old) version and what the
// current reader must make of it.
type fixture struct {
	typ     string
	version int
	written map[string]any // generic value encoded with the writer schema
	want    schemas.Payload
}

func fixtures() []fixture {
	lines := []any{map[string]any{"product_id": "p-1", "quantity": 2}, map[string]any{"product_id": "p-2", "quantity": 1}}
	wantLines := []events.StockLine{{ProductID: "p-1", Quantity: 2}, {ProductID: "p-2", Quantity: 1}}
	return []fixture{
		{"conference.ConferenceCreated", 1,
			map[string]any{"conference_id": "c-1", "name": "GopherCon", "location": "Berlin", "starts_at": t0, "ends_at": t0.Add(48 * time.Hour)},
			&events.ConferenceCreated{ConferenceID: "c-1", Name: "GopherCon", StartsAt: t0, EndsAt: t0.Add(48 * time.Hour), TimeZone: "UTC"}},
		{"conference.ConferenceCreated", 2,
			map[string]any{"conference_id": "c-1", "name": "GopherCon", "starts_at": t0, "ends_at": t0.Add(48 * time.Hour), "time_zone": "Europe/Berlin"},
			&events.ConferenceCreated{ConferenceID: "c-1", Name: "GopherCon", StartsAt: t0, EndsAt: t0.Add(48 * time.Hour), TimeZone: "Europe/Berlin"}},
		{"conference.SeatsAdded", 1,
			map[string]any{"conference_id": "c-1", "seat_type": "vip", "quantity": 40},
			&events.SeatsAdded{ConferenceID: "c-1", SeatType: "vip", Quantity: 40, Currency: "EUR"}},
		{"conference.SeatsAdded", 2,
			map[string]any{"conference_id": "c-1", "seat_type": "vip", "quantity": int64(5_000_000_000), "price_cents": int64(49900), "currency": "USD"},
			&events.SeatsAdded{ConferenceID: "c-1", SeatType: "vip", Quantity: 5_000_000_000, PriceCents: 49900, Currency: "USD"}},
		{"conference.SeatsReserved", 1,
			map[string]any{"conference_id": "c-1", "reservation_id": "r-1", "seat_type": "vip", "quantity": 2, "customer": "ann@example.com"},
			&events.SeatsReserved{ConferenceID: "c-1", ReservationID: "r-1", SeatType: "vip", Quantity: 2, AttendeeEmail: "ann@example.com", ReservedAt: occurred}},
		{"conference.SeatsReserved", 2,
			map[string]any{"conference_id": "c-1", "reservation_id": "r-2", "seat_type": "standard", "quantity": 1, "attendee_email": "bob@example.com"},
			&events.SeatsReserved{ConferenceID: "c-1", ReservationID: "r-2", SeatType: "standard", Quantity: 1, AttendeeEmail: "bob@example.com", ReservedAt: occurred}},
		{"conference.SeatsReserved", 3,
			map[string]any{"conference_id": "c-1", "reservation_id": "r-3", "seat_type": "standard", "quantity": 3, "attendee_email": "cy@example.com", "reserved_at": t0},
			&events.SeatsReserved{ConferenceID: "c-1", ReservationID: "r-3", SeatType: "standard", Quantity: 3, AttendeeEmail: "cy@example.com", ReservedAt: t0}},
		{"conference.SeatReservationCancelled", 1,
			map[string]any{"conference_id": "c-1", "reservation_id": "r-1", "seat_type": "vip", "quantity": 2, "reason": "changed plans", "cancelled_at": t0},
			&events.SeatReservationCancelled{ConferenceID: "c-1", ReservationID: "r-1", SeatType: "vip", Quantity: 2, Reason: "changed plans", CancelledAt: t0}},
		{"shop.OrderPlaced", 1,
			map[string]any{"order_id": "o-1", "customer_id": "cu-1", "currency": "EUR", "item_count": 2, "placed_at": t0},
			&events.OrderPlaced{OrderID: "o-1", CustomerID: "cu-1", Currency: "EUR", ItemCount: 2, PlacedAt: t0, Channel: "web"}},
		{"shop.OrderPlaced", 2,
			map[string]any{"order_id": "o-1", "customer_id": "cu-1", "currency": "EUR", "item_count": 2, "placed_at": t0, "channel": "app"},
			&events.OrderPlaced{OrderID: "o-1", CustomerID: "cu-1", Currency: "EUR", ItemCount: 2, PlacedAt: t0, Channel: "app"}},
		{"shop.OrderItemAdded", 1,
			map[string]any{"order_id": "o-1", "line_no": 1, "product_id": "p-1", "quantity": 2, "unit_price_cents": int64(1999), "added_at": t0},
			&events.OrderItemAdded{OrderID: "o-1", LineNo: 1, ProductID: "p-1", Quantity: 2, UnitPriceCents: 1999, AddedAt: t0}},
		{"shop.StockReserved", 1,
			map[string]any{"order_id": "o-1", "reservation_id": "sr-1", "lines": lines, "reserved_at": t0},
			&events.StockReserved{OrderID: "o-1", ReservationID: "sr-1", Lines: wantLines, ReservedAt: t0}},
		{"shop.StockReservationFailed", 1,
			map[string]any{"order_id": "o-1", "product_id": "p-2", "requested": 5, "available": 1, "reason": "out_of_stock", "failed_at": t0},
			&events.StockReservationFailed{OrderID: "o-1", ProductID: "p-2", Requested: 5, Available: 1, Reason: "out_of_stock", FailedAt: t0}},
		{"shop.PaymentConfirmed", 1,
			map[string]any{"order_id": "o-1", "payment_id": "pay-1", "amount_cents": int64(4997), "currency": "EUR", "psp_ref": "psp-9", "confirmed_at": t0},
			&events.PaymentConfirmed{OrderID: "o-1", PaymentID: "pay-1", AmountCents: 4997, Currency: "EUR", ProviderReference: ptr("psp-9"), ConfirmedAt: t0, Method: "card"}},
		{"shop.PaymentConfirmed", 2,
			map[string]any{"order_id": "o-1", "payment_id": "pay-1", "amount_cents": int64(4997), "currency": "EUR", "provider_reference": nil, "confirmed_at": t0, "method": "wallet"},
			&events.PaymentConfirmed{OrderID: "o-1", PaymentID: "pay-1", AmountCents: 4997, Currency: "EUR", ConfirmedAt: t0, Method: "wallet"}},
		{"shop.PaymentFailed", 1,
			map[string]any{"order_id": "o-1", "payment_id": "pay-1", "amount_cents": int64(4997), "currency": "EUR", "reason": "card_declined", "failed_at": t0},
			&events.PaymentFailed{OrderID: "o-1", PaymentID: "pay-1", AmountCents: 4997, Currency: "EUR", Reason: "card_declined", FailedAt: t0}},
		{"shop.StockReleased", 1,
			map[string]any{"order_id": "o-1", "reservation_id": "sr-1", "lines": lines, "reason": "payment_failed", "released_at": t0},
			&events.StockReleased{OrderID: "o-1", ReservationID: "sr-1", Lines: wantLines, Reason: "payment_failed", ReleasedAt: t0}},
		{"shop.OrderConfirmed", 1,
			map[string]any{"order_id": "o-1", "total_cents": int64(4997), "currency": "EUR", "confirmed_at": t0},
			&events.OrderConfirmed{OrderID: "o-1", TotalCents: 4997, Currency: "EUR", ConfirmedAt: t0}},
		{"shop.OrderCancelled", 1,
			map[string]any{"order_id": "o-1", "reason": "payment_failed", "cancelled_at": t0},
			&events.OrderCancelled{OrderID: "o-1", Reason: "payment_failed", CancelledAt: t0}},
	}
}

func readFixture(t testing.TB, typ string, version int) []byte {
	t.Helper()
	b, err := os.ReadFile(fixturePath(typ, version))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixturePath(typ string, version int) string {
	return filepath.Join("testdata", "fixtures", fmt.Sprintf("%s.v%d.bin", typ, version))
}

// singleObject frames an Avro body the way a producer of that version did.
func singleObject(t *testing.T, v schemas.SchemaVersion, body []byte) []byte {
	t.Helper()
	out := []byte{0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint64(out[2:], v.Fingerprint)
	return append(out, body...)
}

// TestFixtures decodes the golden bytes of every version of every event type
// into the current struct. The fixtures are never regenerated for a released
// version: changing an old .avsc changes its bytes and fails here.
func TestFixtures(t *testing.T) {
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, f := range fixtures() {
		name := f.typ + ".v" + strconv.Itoa(f.version)
		covered[name] = true
		t.Run(name, func(t *testing.T) {
			vs := cat.Versions(f.typ)
			if f.version > len(vs) {
				t.Fatalf("catalog has no %s", name)
			}
			v := vs[f.version-1]
			body, err := avro.Marshal(v.Schema, f.written)
			if err != nil {
				t.Fatalf("encode fixture with %s: %v", v.Path, err)
			}
			fresh := singleObject(t, v, body)
			path := fixturePath(f.typ, f.version)
			if *update {
				if _, err := os.Stat(path); err == nil {
					t.Logf("keeping existing %s (released fixtures are immutable)", path)
				} else if err := os.WriteFile(path, fresh, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestFixtures -update once for a new version)", err)
			}
			if !bytes.Equal(golden, fresh) {
				t.Fatalf("%s changed: %s no longer encodes the fixture to the golden bytes\n got %x\nwant %x", path, v.Path, fresh, golden)
			}
			rec := &kgo.Record{
				Topic: cat.Topic(f.typ), Partition: 1, Offset: 7,
				Key:   []byte(f.want.AggregateID()),
				Value: golden,
				Headers: []kgo.RecordHeader{
					{Key: schemas.HeaderType, Value: []byte(f.typ)},
					{Key: schemas.HeaderVersion, Value: []byte(strconv.Itoa(f.version))},
					{Key: schemas.HeaderEventID, Value: []byte("ev-" + name)},
					{Key: schemas.HeaderOccurredAt, Value: []byte(occurred.Format(time.RFC3339Nano))},
				},
			}
			ev, err := codec.Decode(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Version != f.version || ev.Type != f.typ || ev.AggregateID != f.want.AggregateID() || !ev.OccurredAt.Equal(occurred) {
				t.Fatalf("envelope: %+v", ev)
			}
			if !reflect.DeepEqual(ev.Payload, f.want) {
				t.Fatalf("payload\n got %#v\nwant %#v", ev.Payload, f.want)
			}
		})
	}
	for _, typ := range cat.EventTypes() {
		for _, v := range cat.Versions(typ) {
			if name := typ + ".v" + strconv.Itoa(v.Version); !covered[name] {
				t.Errorf("no fixture for %s (%s)", name, v.Path)
			}
		}
	}
}
