package loadtest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/schemas"
)

// gen produces the event mix of the demo domains without the services'
// round trips through Kafka: the shop saga (order → items → stock →
// payment → confirmation, with stock failures and compensated payment
// failures in the demo's shares) and the seats domain (conference
// creation, reservations, cancellations). The demo services react to each
// other's events consumed from Kafka, so driving them flat out would
// measure the saga's consumers, not Reel; gen emits the same sequences
// directly.
//
// Which aggregate acts next is drawn from a Zipf distribution over
// Aggregates slots (s = ZipfS): a few hot slots act most of the time.
// Every fifth slot is a conference (a long-lived key: hot conferences make
// hot partitions); the others each hold one in-flight order, and when its
// saga ends the slot starts a new order, so hot slots churn orders.
type gen struct {
	rng   *rand.Rand
	zipf  *rand.Zipf
	slots []slot
	now   func() time.Time
}

type slot struct {
	conf  bool
	seq   int
	id    string
	step  int // next step of the order saga / 0: conference not created
	lines int
	total int64
	fail  int // 0 ok, 1 stock fails, 2 payment fails
	open  []resv
	last  time.Time // last stamp of the slot's order
}

type resv struct {
	id       string
	seatType string
	qty      int
}

// Shares of the demo (examples/demo/producers/shop defaults).
const (
	stockFailShare   = 0.05
	paymentFailShare = 0.10
)

func newGen(aggregates int, s float64, seed uint64) *gen {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &gen{rng: rng, zipf: rand.NewZipf(rng, s, 1, uint64(aggregates-1)), slots: make([]slot, aggregates), now: time.Now}
	for i := range g.slots {
		g.slots[i].conf = i%5 == 0
	}
	return g
}

// next returns the next event. emitsOrder is true when the orders
// projection writes a row for it (the freshness prober samples those).
func (g *gen) next() (ev schemas.Event, emitsOrder bool) {
	i := int(g.zipf.Uint64())
	s := &g.slots[i]
	now := g.now().UTC().Truncate(time.Millisecond)
	if s.conf {
		return g.nextSeat(i, s, now), false
	}
	return g.nextOrder(i, s, now)
}

var seatTypes = []string{"standard", "vip"}

func (g *gen) nextSeat(i int, s *slot, now time.Time) schemas.Event {
	if s.step == 0 {
		s.id = fmt.Sprintf("conf-%d", i)
		s.step = 1
		return schemas.NewEvent(&events.ConferenceCreated{ConferenceID: s.id, Name: "Conference " + s.id,
			StartsAt: now.Add(90 * 24 * time.Hour), EndsAt: now.Add(92 * 24 * time.Hour), TimeZone: "UTC"}, schemas.At(now))
	}
	if s.step <= len(seatTypes) {
		st := seatTypes[s.step-1]
		s.step++
		return schemas.NewEvent(&events.SeatsAdded{ConferenceID: s.id, SeatType: st, Quantity: 100000,
			PriceCents: 25000, Currency: "EUR"}, schemas.At(now))
	}
	if len(s.open) > 0 && (g.rng.Float64() < 0.1 || len(s.open) >= 64) {
		k := g.rng.IntN(len(s.open))
		r := s.open[k]
		s.open = append(s.open[:k], s.open[k+1:]...)
		return schemas.NewEvent(&events.SeatReservationCancelled{ConferenceID: s.id, ReservationID: r.id,
			SeatType: r.seatType, Quantity: r.qty, Reason: "customer", CancelledAt: now}, schemas.At(now))
	}
	s.seq++
	r := resv{id: fmt.Sprintf("%s-r%d", s.id, s.seq), seatType: seatTypes[g.rng.IntN(len(seatTypes))], qty: 1 + g.rng.IntN(4)}
	s.open = append(s.open, r)
	return schemas.NewEvent(&events.SeatsReserved{ConferenceID: s.id, ReservationID: r.id, SeatType: r.seatType,
		Quantity: r.qty, AttendeeEmail: "a" + r.id + "@example.com", ReservedAt: now}, schemas.At(now))
}

func (g *gen) nextOrder(i int, s *slot, now time.Time) (schemas.Event, bool) {
	// Strictly increasing stamps per order: the freshness prober tells
	// versions of an order apart by updated_at.
	if !now.After(s.last) {
		now = s.last.Add(time.Millisecond)
	}
	s.last = now
	if s.step == 0 {
		s.seq++
		s.id = fmt.Sprintf("order-%d-%d", i, s.seq)
		s.lines = 1 + g.rng.IntN(3)
		s.total = 0
		s.fail = 0
		if f := g.rng.Float64(); f < stockFailShare {
			s.fail = 1
		} else if f < stockFailShare+paymentFailShare {
			s.fail = 2
		}
		s.step = 1
		return schemas.NewEvent(&events.OrderPlaced{OrderID: s.id, CustomerID: fmt.Sprintf("cust-%d", g.rng.IntN(50000)),
			Currency: "EUR", ItemCount: s.lines, PlacedAt: now, Channel: []string{"web", "app", "store"}[g.rng.IntN(3)]}, schemas.At(now)), true
	}
	if s.step <= s.lines {
		q, price := 1+g.rng.IntN(3), int64(500+g.rng.IntN(20000))
		s.total += int64(q) * price
		ev := schemas.NewEvent(&events.OrderItemAdded{OrderID: s.id, LineNo: s.step, ProductID: fmt.Sprintf("p-%d", 1+g.rng.IntN(20)),
			Quantity: q, UnitPriceCents: price, AddedAt: now}, schemas.At(now))
		s.step++
		return ev, true
	}
	k := s.step - s.lines // saga step after the items
	s.step++
	lines := []events.StockLine{{ProductID: "p-1", Quantity: 1}}
	switch {
	case s.fail == 1 && k == 1:
		return schemas.NewEvent(&events.StockReservationFailed{OrderID: s.id, ProductID: "p-1", Requested: 1, Reason: "out of stock", FailedAt: now}, schemas.At(now)), false
	case s.fail == 1:
		s.step = 0
		return schemas.NewEvent(&events.OrderCancelled{OrderID: s.id, Reason: "out of stock", CancelledAt: now}, schemas.At(now)), true
	case k == 1:
		return schemas.NewEvent(&events.StockReserved{OrderID: s.id, ReservationID: s.id + "-s", Lines: lines, ReservedAt: now}, schemas.At(now)), true
	case s.fail == 2 && k == 2:
		return schemas.NewEvent(&events.PaymentFailed{OrderID: s.id, PaymentID: s.id + "-p", AmountCents: s.total, Currency: "EUR", Reason: "declined", FailedAt: now}, schemas.At(now)), false
	case s.fail == 2 && k == 3:
		return schemas.NewEvent(&events.StockReleased{OrderID: s.id, ReservationID: s.id + "-s", Lines: lines, Reason: "payment failed", ReleasedAt: now}, schemas.At(now)), false
	case s.fail == 2:
		s.step = 0
		return schemas.NewEvent(&events.OrderCancelled{OrderID: s.id, Reason: "payment failed", CancelledAt: now}, schemas.At(now)), true
	case k == 2:
		return schemas.NewEvent(&events.PaymentConfirmed{OrderID: s.id, PaymentID: s.id + "-p", AmountCents: s.total, Currency: "EUR", ConfirmedAt: now, Method: "card"}, schemas.At(now)), true
	default:
		s.step = 0
		return schemas.NewEvent(&events.OrderConfirmed{OrderID: s.id, TotalCents: s.total, Currency: "EUR", ConfirmedAt: now}, schemas.At(now)), true
	}
}
