package projectors_test

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/examples/demo/projectors/shop"
	"github.com/reel-dev/reel/schemas"
)

// This file holds what the exactly-once and outage tests share: a generator
// of shop sagas and seat events over thousands of aggregates, a producer
// that remembers every event with its Kafka position, and an independent
// fold of those events into the read models the projections must build.
// The fold is written from the projections' documented meaning, not by
// calling their Apply.

// world generates a reproducible, interleaved stream of domain events.
type world struct {
	rng    *rand.Rand
	run    string
	seq    int64
	base   time.Time
	active []*sagaPlan // orders in flight
	orders int
	confs  []string
	fresh  int // conferences whose creation events are not emitted yet
	pend   []schemas.Payload
}

type sagaPlan struct {
	steps []schemas.Payload
}

func newWorld(seed int64, run string, activeOrders, conferences int) *world {
	w := &world{rng: rand.New(rand.NewSource(seed)), run: run, base: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)}
	for i := 0; i < activeOrders; i++ {
		w.active = append(w.active, w.newOrder())
	}
	for i := 0; i < conferences; i++ {
		w.confs = append(w.confs, fmt.Sprintf("conf-%s-%04d", run, i))
	}
	return w
}

func (w *world) at() time.Time {
	// Three seconds per event spreads a long run over several days, so
	// daily_sales has more than one day.
	return w.base.Add(time.Duration(w.seq) * 3 * time.Second)
}

// newOrder plans an order's whole saga; its timestamps are filled in when
// each step is emitted.
func (w *world) newOrder() *sagaPlan {
	w.orders++
	id := fmt.Sprintf("o-%s-%06d", w.run, w.orders)
	r := w.rng
	items := 1 + r.Intn(4)
	p := &sagaPlan{}
	p.steps = append(p.steps, &events.OrderPlaced{OrderID: id, CustomerID: fmt.Sprintf("c-%d", r.Intn(500)), Currency: []string{"EUR", "USD"}[r.Intn(2)],
		ItemCount: items, Channel: []string{"web", "app", "store"}[r.Intn(3)]})
	var total int64
	var lines []events.StockLine
	for i := 0; i < items; i++ {
		it := &events.OrderItemAdded{OrderID: id, LineNo: i + 1, ProductID: fmt.Sprintf("p-%02d", r.Intn(40)), Quantity: 1 + r.Intn(5), UnitPriceCents: int64(100 + r.Intn(5000))}
		total += int64(it.Quantity) * it.UnitPriceCents
		lines = append(lines, events.StockLine{ProductID: it.ProductID, Quantity: it.Quantity})
		p.steps = append(p.steps, it)
	}
	switch x := r.Intn(100); {
	case x < 70:
		p.steps = append(p.steps,
			&events.StockReserved{OrderID: id, ReservationID: "res-" + id, Lines: lines},
			&events.PaymentConfirmed{OrderID: id, PaymentID: "pay-" + id, AmountCents: total, Currency: "EUR", Method: "card"},
			&events.OrderConfirmed{OrderID: id, TotalCents: total, Currency: "EUR"})
	case x < 85:
		p.steps = append(p.steps,
			&events.StockReserved{OrderID: id, ReservationID: "res-" + id, Lines: lines},
			&events.PaymentFailed{OrderID: id, PaymentID: "pay-" + id, AmountCents: total, Currency: "EUR", Reason: "declined"},
			&events.StockReleased{OrderID: id, ReservationID: "res-" + id, Lines: lines, Reason: "payment failed"},
			&events.OrderCancelled{OrderID: id, Reason: "payment failed"})
	default:
		p.steps = append(p.steps,
			&events.StockReservationFailed{OrderID: id, ProductID: lines[0].ProductID, Requested: lines[0].Quantity, Reason: "out of stock"},
			&events.OrderCancelled{OrderID: id, Reason: "out of stock"})
	}
	return p
}

// next returns the next event: 70% a step of a random in-flight order,
// 30% a seat event.
func (w *world) next() schemas.Event {
	w.seq++
	at := w.at()
	var p schemas.Payload
	switch {
	case len(w.pend) > 0:
		p, w.pend = w.pend[0], w.pend[1:]
	case w.fresh < len(w.confs) && (w.fresh < 20 || w.rng.Intn(50) == 0):
		// Conferences open over time: creation and seats first, then
		// reservations for it.
		id := w.confs[w.fresh]
		w.fresh++
		p = &events.ConferenceCreated{ConferenceID: id, Name: "Conference " + id, StartsAt: at.Add(30 * 24 * time.Hour), EndsAt: at.Add(32 * 24 * time.Hour), TimeZone: "UTC"}
		w.pend = append(w.pend,
			&events.SeatsAdded{ConferenceID: id, SeatType: "general", Quantity: 5000, PriceCents: 20000, Currency: "EUR"},
			&events.SeatsAdded{ConferenceID: id, SeatType: "vip", Quantity: 200, PriceCents: 90000, Currency: "EUR"})
	case w.rng.Intn(10) < 3:
		id := w.confs[w.rng.Intn(w.fresh)]
		st := []string{"general", "vip"}[w.rng.Intn(2)]
		q := 1 + w.rng.Intn(4)
		if w.rng.Intn(8) == 0 {
			p = &events.SeatReservationCancelled{ConferenceID: id, ReservationID: fmt.Sprint("r", w.seq), SeatType: st, Quantity: q, Reason: "changed plans", CancelledAt: at}
		} else {
			p = &events.SeatsReserved{ConferenceID: id, ReservationID: fmt.Sprint("r", w.seq), SeatType: st, Quantity: q, AttendeeEmail: "a@example.com", ReservedAt: at}
		}
	default:
		i := w.rng.Intn(len(w.active))
		o := w.active[i]
		p, o.steps = o.steps[0], o.steps[1:]
		if len(o.steps) == 0 {
			w.active[i] = w.newOrder()
		}
		stamp(p, at)
	}
	return schemas.NewEvent(p, schemas.At(at), schemas.WithID(fmt.Sprintf("ev-%s-%08d", w.run, w.seq)))
}

// stamp sets the payload's own time fields to at.
func stamp(p schemas.Payload, at time.Time) {
	switch e := p.(type) {
	case *events.OrderPlaced:
		e.PlacedAt = at
	case *events.OrderItemAdded:
		e.AddedAt = at
	case *events.StockReserved:
		e.ReservedAt = at
	case *events.StockReservationFailed:
		e.FailedAt = at
	case *events.PaymentConfirmed:
		e.ConfirmedAt = at
	case *events.PaymentFailed:
		e.FailedAt = at
	case *events.StockReleased:
		e.ReleasedAt = at
	case *events.OrderConfirmed:
		e.ConfirmedAt = at
	case *events.OrderCancelled:
		e.CancelledAt = at
	}
}

// produced is one event as it landed in Kafka.
type produced struct {
	ev        schemas.Event
	topic     string
	partition int32
	offset    int64
}

// stream produces the world's events to topics (the catalog topic plus
// suffix) at about rate events/s until stop is closed, and remembers every
// event with its position. Sends are synchronous per chunk, so the
// remembered order per aggregate is the order in Kafka.
type stream struct {
	mu     sync.Mutex
	evs    []produced
	last   map[string]map[int32]int64
	err    error
	done   chan struct{}
	start  time.Time
	finish time.Time
}

func startStream(t *testing.T, brokers []string, w *world, suffix string, rate int, stop <-chan struct{}) *stream {
	t.Helper()
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	// No delivery timeout and unlimited retries: through a broker restart
	// the producer waits, and idempotence keeps every event exactly once in
	// Kafka, so the fold sees what the log holds.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond), kgo.ClientID("reel-test-producer"))
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{last: map[string]map[int32]int64{}, done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(s.done)
		defer cl.Close()
		const tick = 50 * time.Millisecond
		per := max(1, rate*int(tick)/int(time.Second))
		next := time.Now()
		for {
			select {
			case <-stop:
				s.finish = time.Now()
				return
			default:
			}
			evs := make([]schemas.Event, per)
			recs := make([]*kgo.Record, per)
			for i := range evs {
				evs[i] = w.next()
				r, err := codec.Encode(context.Background(), evs[i])
				if err != nil {
					s.setErr(err)
					return
				}
				r.Topic += suffix
				recs[i] = r
			}
			res := cl.ProduceSync(context.Background(), recs...)
			if err := res.FirstErr(); err != nil {
				s.setErr(fmt.Errorf("produce: %w", err))
				return
			}
			// Results come in completion order, not in the order sent.
			idx := make(map[*kgo.Record]int, len(recs))
			for i, r := range recs {
				idx[r] = i
			}
			sort.Slice(res, func(a, b int) bool { return idx[res[a].Record] < idx[res[b].Record] })
			s.mu.Lock()
			for i, r := range res {
				rec := r.Record
				if idx[rec] != i {
					s.mu.Unlock()
					s.setErr(fmt.Errorf("produce result %d is not for record %d", idx[rec], i))
					return
				}
				s.evs = append(s.evs, produced{ev: evs[i], topic: rec.Topic, partition: rec.Partition, offset: rec.Offset})
				if s.last[rec.Topic] == nil {
					s.last[rec.Topic] = map[int32]int64{}
				}
				s.last[rec.Topic][rec.Partition] = max(s.last[rec.Topic][rec.Partition], rec.Offset)
			}
			s.mu.Unlock()
			next = next.Add(tick)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			} else {
				next = time.Now()
			}
		}
	}()
	return s
}

func (s *stream) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	s.finish = time.Now()
}

func (s *stream) error() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *stream) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.evs)
}

// wait waits for the producer to stop and returns its error.
func (s *stream) wait() error {
	<-s.done
	return s.err
}

// offsets returns the last produced offset per partition of the topics
// whose names start with one of prefixes (nil: all).
func (s *stream) offsets(topics ...string) map[string]map[int32]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[int32]int64{}
	for tp, parts := range s.last {
		for _, want := range topics {
			if tp == want {
				out[tp] = map[int32]int64{}
				for p, o := range parts {
					out[tp][p] = o
				}
			}
		}
	}
	return out
}

// ---- the independent fold ----------------------------------------------

type foldOrder struct {
	customer, currency, channel, status string
	itemCount, linesAdded               uint32
	total, paid                         int64
	cancelReason                        string
	placedAt, updatedAt                 time.Time
	versions                            int // state-changing events = history rows
}

type foldSaga struct {
	stock, payment, outcome string
	released                bool
	steps                   []string
	started, finished       time.Time
}

type foldPending struct {
	currency          string
	products          []string
	quantities, price []int64
	closed            bool
}

type foldConf struct {
	name                        string
	startsAt, updatedAt         time.Time
	total, reserved             map[string]int64
	reservations, cancellations uint32
	versions                    int
}

type saleLine struct {
	day           string // YYYY-MM-DD
	product       string
	order         string
	quantity, rev int64
	currency      string
}

type daily struct {
	units, revenue int64
	orders         map[string]bool
}

// fold is what every table must hold after the events, computed by rules
// stated independently of the projections' code.
type fold struct {
	events  int
	orders  map[string]*foldOrder
	sagas   map[string]*foldSaga
	pending map[string]*foldPending
	lines   map[saleLine]int
	nLines  int
	daily   map[string]*daily // day/product/currency
	confs   map[string]*foldConf
	log     map[string]produced // event ID → event and position
}

func foldEvents(evs []produced) *fold {
	f := &fold{orders: map[string]*foldOrder{}, sagas: map[string]*foldSaga{}, pending: map[string]*foldPending{},
		lines: map[saleLine]int{}, daily: map[string]*daily{}, confs: map[string]*foldConf{}, log: map[string]produced{}}
	for _, pe := range evs {
		f.events++
		f.log[pe.ev.ID] = pe
		at := pe.ev.OccurredAt.UTC()
		switch e := pe.ev.Payload.(type) {
		case *events.ConferenceCreated, *events.SeatsAdded, *events.SeatsReserved, *events.SeatReservationCancelled:
			f.conference(pe.ev.AggregateID, e, at)
		default:
			f.order(pe.ev.AggregateID, e, at)
		}
	}
	return f
}

func (f *fold) conference(id string, p any, at time.Time) {
	c := f.confs[id]
	if c == nil {
		c = &foldConf{total: map[string]int64{}, reserved: map[string]int64{}}
		f.confs[id] = c
	}
	switch e := p.(type) {
	case *events.ConferenceCreated:
		c.name, c.startsAt = e.Name, e.StartsAt.UTC()
	case *events.SeatsAdded:
		c.total[e.SeatType] += e.Quantity
	case *events.SeatsReserved:
		c.reserved[e.SeatType] += int64(e.Quantity)
		c.reservations++
	case *events.SeatReservationCancelled:
		c.reserved[e.SeatType] -= int64(e.Quantity)
		c.cancellations++
	}
	c.updatedAt = at
	c.versions++
}

func (f *fold) order(id string, p any, at time.Time) {
	o := f.orders[id]
	s := f.sagas[id]
	pd := f.pending[id]
	if o == nil {
		o, s, pd = &foldOrder{}, &foldSaga{stock: "pending", payment: "pending", outcome: shop.OutcomePending}, &foldPending{}
		f.orders[id], f.sagas[id] = o, s
	}
	short := ""
	changed := true // orders_current gets a new version
	switch e := p.(type) {
	case *events.OrderPlaced:
		o.customer, o.currency, o.channel, o.itemCount, o.placedAt, o.status = e.CustomerID, e.Currency, e.Channel, uint32(e.ItemCount), at, shop.StatusPlaced
		s.started, short = at, "OrderPlaced"
		pd.currency = e.Currency
	case *events.OrderItemAdded:
		o.linesAdded++
		o.total += int64(e.Quantity) * e.UnitPriceCents
		if !pd.closed {
			pd.products = append(pd.products, e.ProductID)
			pd.quantities = append(pd.quantities, int64(e.Quantity))
			pd.price = append(pd.price, e.UnitPriceCents)
		}
	case *events.StockReserved:
		o.status, s.stock, short = shop.StatusStockReserved, "reserved", "StockReserved"
	case *events.StockReservationFailed:
		changed, s.stock, short = false, "failed", "StockReservationFailed"
	case *events.PaymentConfirmed:
		o.paid += e.AmountCents
		o.status, s.payment, short = shop.StatusPaid, "confirmed", "PaymentConfirmed"
	case *events.PaymentFailed:
		changed, s.payment, short = false, "failed", "PaymentFailed"
	case *events.StockReleased:
		changed, s.released, s.stock, short = false, true, "released", "StockReleased"
	case *events.OrderConfirmed:
		o.status, s.outcome, s.finished, short = shop.StatusConfirmed, shop.OutcomeConfirmed, at, "OrderConfirmed"
		if !pd.closed {
			day := at.Format("2006-01-02")
			for i, prod := range pd.products {
				l := saleLine{day, prod, id, pd.quantities[i], pd.quantities[i] * pd.price[i], pd.currency}
				f.lines[l]++
				f.nLines++
				k := day + "/" + prod + "/" + pd.currency
				if f.daily[k] == nil {
					f.daily[k] = &daily{orders: map[string]bool{}}
				}
				f.daily[k].units += l.quantity
				f.daily[k].revenue += l.rev
				f.daily[k].orders[id] = true
			}
		}
		pd.closed = true
	case *events.OrderCancelled:
		o.status, o.cancelReason, s.finished, short = shop.StatusCancelled, e.Reason, at, "OrderCancelled"
		s.outcome = shop.OutcomeRejected
		if s.released {
			s.outcome = shop.OutcomeCompensated
		}
		pd.closed = true
	}
	if short != "" {
		s.steps = append(s.steps, short)
	}
	if changed {
		o.updatedAt = at
		o.versions++
	}
	if _, ok := f.pending[id]; !ok {
		f.pending[id] = pd
	}
}

// ensure the shop/seats packages' topics are what the generator's catalog uses.
var _ = []string{shop.Topic, seats.Topic}
