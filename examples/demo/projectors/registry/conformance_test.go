package registry_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	pseats "github.com/reel-dev/reel/examples/demo/producers/seats"
	pshop "github.com/reel-dev/reel/examples/demo/producers/shop"
	"github.com/reel-dev/reel/examples/demo/projectors/eventlog"
	"github.com/reel-dev/reel/examples/demo/projectors/registry"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/examples/demo/projectors/shop"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/projectors/conformance"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Every projection in the registry must have a conformance case.
func TestEveryProjectionHasACase(t *testing.T) {
	for _, p := range registry.All() {
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
		if _, ok := cases[p.Name]; !ok {
			t.Errorf("projection %s has no conformance case in this file", p.Name)
		}
	}
}

var cases = map[string]conformance.Case{
	"seats":      {New: seats.Availability, Produce: produceSeats, Check: checkSeats},
	"orders":     {New: shop.Orders, Produce: produceShop, Check: checkOrders},
	"order_saga": {New: shop.Saga, Produce: produceShop, Check: checkSaga},
	"sales":      {New: shop.Sales, Produce: produceShop, Check: checkSales},
	"event_log":  {New: func() *projection.Projection { return eventlog.Log(seats.Topic, shop.Topic) }, Produce: produceBoth, Check: checkEventLog},
}

func TestConformance(t *testing.T) {
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Run(n, func(t *testing.T) { conformance.Run(t, demoCase(t, cases[n])) })
	}
}

// demoCase gives c the demo's catalog and Go types.
func demoCase(t *testing.T, c conformance.Case) conformance.Case {
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	c.Catalog, c.Bindings = cat, events.Bindings()
	return c
}

func codec(t *testing.T) *schemas.Codec {
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

// recorder collects published events and positions from a demo service.
type recorder struct {
	mu  sync.Mutex
	evs []schemas.Event
	pos conformance.Positions
}

func (r *recorder) on(ev schemas.Event, p producers.Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	r.pos.Add(p.Topic, p.Partition, p.Offset)
}

func produceShop(t *testing.T, brokers []string) ([]schemas.Event, conformance.Positions) {
	rec := &recorder{pos: conformance.Positions{}}
	st, err := pshop.Run(context.Background(), pshop.Config{Codec: codec(t), Kafka: []kgo.Opt{kgo.SeedBrokers(brokers...)},
		Orders: 300, Rate: -1, Products: 8, PaymentFailShare: 0.2, StockFailShare: 0.1, Drain: 30 * time.Second, Seed: 11, OnPublish: rec.on})
	if err != nil {
		t.Fatal(err)
	}
	if st.Open != 0 {
		t.Fatalf("%d sagas still open after the demo drained", st.Open)
	}
	t.Logf("shop: %d orders, %d confirmed, %d out of stock, %d payment failed, %d events", st.Orders, st.Confirmed, st.OutOfStock, st.PaymentFailed, len(rec.evs))
	return rec.evs, rec.pos
}

func produceSeats(t *testing.T, brokers []string) ([]schemas.Event, conformance.Positions) {
	rec := &recorder{pos: conformance.Positions{}}
	st, err := pseats.Run(context.Background(), pseats.Config{Codec: codec(t), Kafka: []kgo.Opt{kgo.SeedBrokers(brokers...)},
		Conferences: 4, SeatsPerType: 60, Rate: -1, Commands: 400, Seed: 5, OnPublish: rec.on})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seats: %d commands, %d refused as overbooked, %d events", st.Commands, st.Overbooked, len(rec.evs))
	return rec.evs, rec.pos
}

func produceBoth(t *testing.T, brokers []string) ([]schemas.Event, conformance.Positions) {
	a, pa := produceSeats(t, brokers)
	b, pb := produceShop(t, brokers)
	for topic, parts := range pb {
		for p, o := range parts {
			pa.Add(topic, p, o)
		}
	}
	return append(a, b...), pa
}

func query(t *testing.T, conn driver.Conn, sql string, scan func(driver.Rows) error) {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func compare[V comparable](t *testing.T, what string, want, got map[string]V) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			diffs = append(diffs, fmt.Sprintf("%s: want %v, got %v", k, v, g))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %v", k, v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s: %d of %d differ from the fold, e.g. %v", what, len(diffs), len(want), diffs[:min(len(diffs), 10)])
	}
	if len(want) == 0 {
		t.Fatalf("%s: the fold is empty; the test proves nothing", what)
	}
}

// --- independent folds -------------------------------------------------

type seatRow struct{ Total, Reserved int64 }

func checkSeats(t *testing.T, conn driver.Conn, evs []schemas.Event) {
	want := map[string]seatRow{}
	for _, ev := range evs {
		switch e := ev.Payload.(type) {
		case *events.SeatsAdded:
			r := want[e.ConferenceID+"/"+e.SeatType]
			r.Total += e.Quantity
			want[e.ConferenceID+"/"+e.SeatType] = r
		case *events.SeatsReserved:
			r := want[e.ConferenceID+"/"+e.SeatType]
			r.Reserved += int64(e.Quantity)
			want[e.ConferenceID+"/"+e.SeatType] = r
		case *events.SeatReservationCancelled:
			r := want[e.ConferenceID+"/"+e.SeatType]
			r.Reserved -= int64(e.Quantity)
			want[e.ConferenceID+"/"+e.SeatType] = r
		}
	}
	got := map[string]seatRow{}
	query(t, conn, "SELECT conference_id, seat_type, total, reserved, available FROM seats_available", func(r driver.Rows) error {
		var c, st string
		var total, reserved, avail int64
		if err := r.Scan(&c, &st, &total, &reserved, &avail); err != nil {
			return err
		}
		if avail != total-reserved || avail < 0 {
			return fmt.Errorf("%s/%s: available %d with total %d and reserved %d", c, st, avail, total, reserved)
		}
		got[c+"/"+st] = seatRow{total, reserved}
		return nil
	})
	compare(t, "seats_available", want, got)
}

type orderRow struct {
	Status            string
	Total, Paid       int64
	Items, LinesAdded uint32
}

func checkOrders(t *testing.T, conn driver.Conn, evs []schemas.Event) {
	want := map[string]orderRow{}
	for _, ev := range evs {
		id := ev.AggregateID
		o := want[id]
		switch e := ev.Payload.(type) {
		case *events.OrderPlaced:
			o.Status, o.Items = "placed", uint32(e.ItemCount)
		case *events.OrderItemAdded:
			o.Total += int64(e.Quantity) * e.UnitPriceCents
			o.LinesAdded++
		case *events.StockReserved:
			o.Status = "stock_reserved"
		case *events.PaymentConfirmed:
			o.Status, o.Paid = "paid", o.Paid+e.AmountCents
		case *events.OrderConfirmed:
			o.Status = "confirmed"
		case *events.OrderCancelled:
			o.Status = "cancelled"
		default:
			continue
		}
		want[id] = o
	}
	got := map[string]orderRow{}
	query(t, conn, "SELECT order_id, status, total_cents, paid_cents, item_count, lines_added FROM orders_current", func(r driver.Rows) error {
		var id string
		var o orderRow
		if err := r.Scan(&id, &o.Status, &o.Total, &o.Paid, &o.Items, &o.LinesAdded); err != nil {
			return err
		}
		got[id] = o
		return nil
	})
	compare(t, "orders_current", want, got)
}

func checkSaga(t *testing.T, conn driver.Conn, evs []schemas.Event) {
	released := map[string]bool{}
	want := map[string]string{}
	for _, ev := range evs {
		id := ev.AggregateID
		switch ev.Payload.(type) {
		case *events.OrderPlaced:
			want[id] = "pending"
		case *events.StockReleased:
			released[id] = true
		case *events.OrderConfirmed:
			want[id] = "confirmed"
		case *events.OrderCancelled:
			want[id] = "rejected"
			if released[id] {
				want[id] = "compensated"
			}
		}
	}
	got := map[string]string{}
	query(t, conn, "SELECT order_id, outcome, stock_released FROM order_saga", func(r driver.Rows) error {
		var id, outcome string
		var rel bool
		if err := r.Scan(&id, &outcome, &rel); err != nil {
			return err
		}
		if rel != released[id] {
			return fmt.Errorf("order %s: stock_released %v, fold says %v", id, rel, released[id])
		}
		got[id] = outcome
		return nil
	})
	compare(t, "order_saga", want, got)
	outcomes := map[string]int{}
	for _, o := range want {
		outcomes[o]++
	}
	if outcomes["compensated"] == 0 || outcomes["confirmed"] == 0 {
		t.Fatalf("the history lacks a compensated or a confirmed saga (%v): the test proves too little", outcomes)
	}
}

type salesRow struct{ Units, Revenue int64 }

func checkSales(t *testing.T, conn driver.Conn, evs []schemas.Event) {
	type line struct {
		product     string
		qty, priceC int64
	}
	lines := map[string][]line{}
	want := map[string]salesRow{}
	for _, ev := range evs {
		switch e := ev.Payload.(type) {
		case *events.OrderItemAdded:
			lines[e.OrderID] = append(lines[e.OrderID], line{e.ProductID, int64(e.Quantity), e.UnitPriceCents})
		case *events.OrderConfirmed:
			day := e.ConfirmedAt.UTC().Format(time.DateOnly)
			for _, l := range lines[e.OrderID] {
				k := day + "/" + l.product
				r := want[k]
				r.Units += l.qty
				r.Revenue += l.qty * l.priceC
				want[k] = r
			}
		}
	}
	got := map[string]salesRow{}
	query(t, conn, "SELECT toString(day), product_id, toInt64(units), toInt64(revenue_cents) FROM daily_sales", func(r driver.Rows) error {
		var day, p string
		var s salesRow
		if err := r.Scan(&day, &p, &s.Units, &s.Revenue); err != nil {
			return err
		}
		got[day+"/"+p] = s
		return nil
	})
	compare(t, "daily_sales", want, got)
}

func checkEventLog(t *testing.T, conn driver.Conn, evs []schemas.Event) {
	want := map[string]uint64{}
	for _, ev := range evs {
		want[ev.Type]++
	}
	got := map[string]uint64{}
	query(t, conn, "SELECT event_type, count() FROM event_log GROUP BY event_type", func(r driver.Rows) error {
		var typ string
		var n uint64
		if err := r.Scan(&typ, &n); err != nil {
			return err
		}
		got[typ] = n
		return nil
	})
	compare(t, "event_log per type", want, got)
	var ids uint64
	if err := conn.QueryRow(context.Background(), "SELECT uniqExact(event_id) FROM event_log").Scan(&ids); err != nil {
		t.Fatal(err)
	}
	if int(ids) != len(evs) {
		t.Fatalf("event_log has %d distinct event IDs, %d events were produced", ids, len(evs))
	}
}
