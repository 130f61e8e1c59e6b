package projectors_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/eventlog"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/examples/demo/projectors/shop"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// Hot-path benchmarks of the projector. Avro decode and upcasting are in
// schemas (BenchmarkDecode, incl. single-object/v1-upcast); these cover
// Apply of each demo projection, the worker's decode → Apply → batching
// path, addRow, and clickhouse-go's encoding of a 5000-row orders batch.
//
//	go test -run '^$' -bench . -benchmem ./projectors/

var benchT0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// benchEvents is a saga-shaped stream: per order placed, two items, stock
// reserved, payment confirmed, confirmed; per conference created, seats
// added, reservations and a cancellation.
func benchEvents() (shopEvs, seatEvs []schemas.Event) {
	for i := range 1000 {
		id := fmt.Sprintf("order-%d", i)
		at := schemas.At(benchT0.Add(time.Duration(i) * time.Millisecond))
		shopEvs = append(shopEvs,
			schemas.NewEvent(&events.OrderPlaced{OrderID: id, CustomerID: "c-1", Currency: "EUR", ItemCount: 2, PlacedAt: benchT0, Channel: "web"}, at),
			schemas.NewEvent(&events.OrderItemAdded{OrderID: id, LineNo: 1, ProductID: "p-1", Quantity: 2, UnitPriceCents: 1500, AddedAt: benchT0}, at),
			schemas.NewEvent(&events.OrderItemAdded{OrderID: id, LineNo: 2, ProductID: "p-2", Quantity: 1, UnitPriceCents: 900, AddedAt: benchT0}, at),
			schemas.NewEvent(&events.StockReserved{OrderID: id, ReservationID: id + "-s", Lines: []events.StockLine{{ProductID: "p-1", Quantity: 2}}, ReservedAt: benchT0}, at),
			schemas.NewEvent(&events.PaymentConfirmed{OrderID: id, PaymentID: id + "-p", AmountCents: 3900, Currency: "EUR", ConfirmedAt: benchT0, Method: "card"}, at),
			schemas.NewEvent(&events.OrderConfirmed{OrderID: id, TotalCents: 3900, Currency: "EUR", ConfirmedAt: benchT0}, at),
		)
	}
	for i := range 100 {
		id := fmt.Sprintf("conf-%d", i)
		at := schemas.At(benchT0)
		seatEvs = append(seatEvs,
			schemas.NewEvent(&events.ConferenceCreated{ConferenceID: id, Name: id, StartsAt: benchT0, EndsAt: benchT0, TimeZone: "UTC"}, at),
			schemas.NewEvent(&events.SeatsAdded{ConferenceID: id, SeatType: "standard", Quantity: 1000, PriceCents: 100, Currency: "EUR"}, at))
		for k := range 8 {
			seatEvs = append(seatEvs, schemas.NewEvent(&events.SeatsReserved{ConferenceID: id, ReservationID: fmt.Sprintf("%s-r%d", id, k),
				SeatType: "standard", Quantity: 2, AttendeeEmail: "a@example.com", ReservedAt: benchT0}, at))
		}
		seatEvs = append(seatEvs, schemas.NewEvent(&events.SeatReservationCancelled{ConferenceID: id, ReservationID: id + "-r0",
			SeatType: "standard", Quantity: 2, Reason: "x", CancelledAt: benchT0}, at))
	}
	return shopEvs, seatEvs
}

func benchCodec(b *testing.B) *schemas.Codec {
	cat, err := events.Load()
	if err != nil {
		b.Fatal(err)
	}
	c, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// decoded returns the events as a projector sees them (decoded from their
// records, so payload types and times are what Apply gets).
func decoded(b *testing.B, c *schemas.Codec, evs []schemas.Event) ([]*kgo.Record, []schemas.Event) {
	ctx := context.Background()
	recs := make([]*kgo.Record, len(evs))
	out := make([]schemas.Event, len(evs))
	for i, ev := range evs {
		r, err := c.Encode(ctx, ev)
		if err != nil {
			b.Fatal(err)
		}
		r.Offset, r.Partition, r.Timestamp = int64(i), 0, benchT0
		recs[i] = r
		if out[i], err = c.Decode(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	return recs, out
}

func benchProjections() []struct {
	p    *projection.Projection
	shop bool
} {
	return []struct {
		p    *projection.Projection
		shop bool
	}{
		{shop.Orders(), true}, {shop.Saga(), true}, {shop.Sales(), true},
		{seats.Availability(), false}, {eventlog.Log(seats.Topic, shop.Topic), true},
	}
}

// BenchmarkApply: the projection's Apply alone (state from the worker's
// cache), per event.
func BenchmarkApply(b *testing.B) {
	c := benchCodec(b)
	shopEvs, seatEvs := benchEvents()
	_, shopDec := decoded(b, c, shopEvs)
	_, seatDec := decoded(b, c, seatEvs)
	ctx := context.Background()
	for _, bp := range benchProjections() {
		evs := seatDec
		if bp.shop {
			evs = shopDec
		}
		b.Run(bp.p.Name, func(b *testing.B) {
			w := projectors.NewBenchWorker(bp.p, c, 5000)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := w.Apply(ctx, int64(i), evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkWorker: one record through the worker — decode, Apply, rows
// into the batch (with system columns), metrics — per event; batches of
// 5000 are dropped instead of inserted.
func BenchmarkWorker(b *testing.B) {
	c := benchCodec(b)
	shopEvs, seatEvs := benchEvents()
	shopRecs, _ := decoded(b, c, shopEvs)
	seatRecs, _ := decoded(b, c, seatEvs)
	ctx := context.Background()
	for _, bp := range benchProjections() {
		recs := seatRecs
		if bp.shop {
			recs = shopRecs
		}
		b.Run(bp.p.Name, func(b *testing.B) {
			w := projectors.NewBenchWorker(bp.p, c, 5000)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := w.Process(ctx, recs[i%len(recs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkAddRow: queueing one 12-column orders row with its system
// columns.
func BenchmarkAddRow(b *testing.B) {
	w := projectors.NewBenchWorker(shop.Orders(), benchCodec(b), 5000)
	row := ordersRow(0)
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		w.AddRow(i, "order-1", benchT0, row)
		i++
	}
}

func ordersRow(i int) []any {
	return []any{fmt.Sprintf("order-%d", i), "c-1", "EUR", "web", "confirmed", uint32(2), uint32(2),
		int64(3900), int64(3900), "", benchT0, benchT0}
}

// BenchmarkInsertEncode: clickhouse-go PrepareBatch + Append of a
// 5000-row orders_current batch (user and system columns), aborted before
// Send — the client-side encoding cost of one insert. Needs ClickHouse
// (reel-chdb through REEL_CHDB_BIN, or REEL_CLICKHOUSE_DSN).
func BenchmarkInsertEncode(b *testing.B) {
	ch := testenv.ClickHouse(b)
	ctx := context.Background()
	l := store.NewLayout(shop.Orders(), 1)
	if err := store.EnsureSchema(ctx, ch.Conn, l); err != nil {
		b.Fatal(err)
	}
	var pt store.PhysTable
	for _, t := range l.Tables {
		if t.State {
			pt = t
		}
	}
	var cols string
	for i, c := range append(pt.Columns, store.SystemColumns()...) {
		if i > 0 {
			cols += ", "
		}
		cols += c.Name
	}
	stmt := "INSERT INTO " + pt.Name + " (" + cols + ")"
	rows := make([][]any, 5000)
	for i := range rows {
		rows[i] = append(ordersRow(i), "shop.orders", uint32(0), uint64(i), benchT0)
	}
	for _, send := range []bool{false, true} {
		name := "append-5000"
		if send {
			name = "append+send-5000"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				batch, err := ch.Conn.PrepareBatch(ctx, stmt)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range rows {
					if err := batch.Append(r...); err != nil {
						b.Fatal(err)
					}
				}
				if send {
					err = batch.Send()
				} else {
					err = batch.Abort()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/5000, "ns/row")
		})
	}
}
