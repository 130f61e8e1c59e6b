// Package shop is the shop demo: an order → stock → payment saga by
// choreography on the shop.orders topic, with compensation. Three services
// react to each other's events consumed from Kafka (not to in-memory calls):
//
//	order service    publishes OrderPlaced + OrderItemAdded×n;
//	                 PaymentConfirmed → OrderConfirmed;
//	                 StockReservationFailed or StockReleased → OrderCancelled
//	stock service    all items seen → StockReserved | StockReservationFailed;
//	                 PaymentFailed → StockReleased (compensation)
//	payment service  StockReserved → PaymentConfirmed | PaymentFailed
//
// Usage:
//
//	stats, err := shop.Run(ctx, shop.Config{
//		Codec: codec, Kafka: []kgo.Opt{kgo.SeedBrokers("127.0.0.1:9092")},
//		Orders: 1000, Rate: 200, PaymentFailShare: 0.1, StockFailShare: 0.05,
//	})
package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/schemas"
)

// Topic carries every event of an order, keyed by order ID.
const Topic = "shop.orders"

// Config configures Run. Zero values take the defaults in the comments.
type Config struct {
	Codec            *schemas.Codec // required
	Kafka            []kgo.Opt      // seed brokers at least
	Orders           int            // orders to place; 0: until Duration / ctx
	Duration         time.Duration  // stop placing orders after this; 0: no limit
	Rate             float64        // orders per second, default 20; < 0 unlimited
	Products         int            // catalog size p-1 … p-N, default 20
	MaxLines         int            // lines per order 1..MaxLines, default 3
	PaymentFailShare float64        // share of payments declined, default 0.1
	StockFailShare   float64        // share of stock reservations failing, default 0.05
	Drain            time.Duration  // wait for open sagas after the last order, default 30s
	Seed             uint64         // random seed; 0: time-based
	// OnPublish sees every published event; calls are serialized and in
	// order per order.
	OnPublish func(schemas.Event, producers.Position)
	Logger    *slog.Logger
}

// Stats summarizes a run.
type Stats struct {
	Published     producers.Counts // events per type
	Orders        int              // orders placed
	Confirmed     int
	OutOfStock    int // cancelled: stock reservation failed
	PaymentFailed int // cancelled after compensation
	Open          int // sagas not finished when Run returned
}

type saga struct {
	ready     chan struct{} // closed once the order's placement and its hooks are done
	placed    schemas.Event
	items     []events.OrderItemAdded
	itemCount int
	currency  string
	stockFail bool
	payFail   bool
	reserved  *events.StockReserved
	done      bool
}

type run struct {
	cfg   Config
	p     *producers.Producer
	mu    sync.Mutex // guards sagas, stats, OnPublish calls
	sagas map[string]*saga
	st    Stats
}

// Run places orders at the configured rate and runs the three services
// until every placed order is confirmed or cancelled (or Drain passes).
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.Rate == 0 {
		cfg.Rate = 20
	}
	if cfg.Products <= 0 {
		cfg.Products = 20
	}
	if cfg.MaxLines <= 0 {
		cfg.MaxLines = 3
	}
	if cfg.PaymentFailShare == 0 {
		cfg.PaymentFailShare = 0.1
	}
	if cfg.StockFailShare == 0 {
		cfg.StockFailShare = 0.05
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := &run{cfg: cfg, sagas: map[string]*saga{}, st: Stats{Published: producers.Counts{}}}
	p, err := producers.Open(cfg.Codec, cfg.Kafka...)
	if err != nil {
		return r.st, err
	}
	defer p.Close()
	r.p = p

	// Consume from the current end, fixed before the first order, so the
	// services see exactly what this run produces and nothing is missed.
	starts, err := endOffsets(ctx, p.Client())
	if err != nil {
		return r.st, err
	}
	cons, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{Topic: starts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, cfg.Kafka...)...)
	if err != nil {
		return r.st, err
	}
	defer cons.Close()

	genCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		genCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	genDone := make(chan error, 1)
	go func() { genDone <- r.generate(genCtx, rand.New(rand.NewPCG(seed, 11))) }()

	var genErr error
	generating := true
	var drainBy time.Time
	for {
		if !generating {
			r.mu.Lock()
			open := r.st.Orders - r.st.Confirmed - r.st.OutOfStock - r.st.PaymentFailed
			r.mu.Unlock()
			if open == 0 || time.Now().After(drainBy) || ctx.Err() != nil {
				r.st.Open = open
				break
			}
		}
		select {
		case genErr = <-genDone:
			generating = false
			drainBy = time.Now().Add(cfg.Drain)
			if genErr != nil && !errors.Is(genErr, context.Canceled) && !errors.Is(genErr, context.DeadlineExceeded) {
				return r.snapshot(), genErr
			}
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cons.PollFetches(pctx)
		cancel()
		var ferr error
		fs.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("shop: consume %s/%d: %w", t, part, err)
			}
		})
		if ferr != nil {
			return r.snapshot(), ferr
		}
		var reactions []schemas.Event
		for _, rec := range fs.Records() {
			ev, err := cfg.Codec.Decode(ctx, rec)
			if err != nil {
				cfg.Logger.Warn("shop: skipping undecodable event", "err", err)
				continue
			}
			reactions = append(reactions, r.react(ev)...)
		}
		if len(reactions) > 0 {
			if err := r.publish(ctx, reactions...); err != nil {
				return r.snapshot(), err
			}
		}
	}
	st := r.snapshot()
	cfg.Logger.Info("shop demo done", "orders", st.Orders, "confirmed", st.Confirmed, "out_of_stock", st.OutOfStock, "payment_failed", st.PaymentFailed, "open", st.Open)
	if st.Open > 0 && ctx.Err() == nil {
		return st, fmt.Errorf("shop: %d sagas still open after draining %v", st.Open, cfg.Drain)
	}
	return st, nil
}

func (r *run) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.Published = producers.Counts{}
	for k, v := range r.st.Published {
		st.Published[k] = v
	}
	return st
}

func endOffsets(ctx context.Context, cl *kgo.Client) (map[int32]kgo.Offset, error) {
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, Topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return nil, fmt.Errorf("shop: create %s: %w", Topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("shop: end offsets of %s: %w", Topic, err)
	}
	out := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = kgo.NewOffset().At(o.Offset) })
	return out, nil
}

func (r *run) publish(ctx context.Context, evs ...schemas.Event) error {
	pos, err := r.p.Publish(ctx, evs...)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ev := range evs {
		ev.Version = r.cfg.Codec.Catalog().Type(ev.Type).Current().Version
		r.st.Published[ev.Type]++
		if r.cfg.OnPublish != nil {
			r.cfg.OnPublish(ev, pos[i])
		}
	}
	return nil
}

// generate is the customer side of the order service.
func (r *run) generate(ctx context.Context, rng *rand.Rand) error {
	pace := producers.NewPacer(r.cfg.Rate)
	for n := 0; r.cfg.Orders == 0 || n < r.cfg.Orders; n++ {
		if err := pace.Wait(ctx); err != nil {
			return err
		}
		id := "order-" + uuid.NewString()
		now := time.Now().UTC().Truncate(time.Millisecond)
		lines := 1 + rng.IntN(r.cfg.MaxLines)
		placed := schemas.NewEvent(&events.OrderPlaced{
			OrderID: id, CustomerID: fmt.Sprintf("customer-%d", rng.IntN(500)), Currency: "EUR",
			ItemCount: lines, PlacedAt: now, Channel: []string{"web", "app", "store"}[rng.IntN(3)],
		})
		evs := []schemas.Event{placed}
		for i := 1; i <= lines; i++ {
			evs = append(evs, schemas.NewEvent(&events.OrderItemAdded{
				OrderID: id, LineNo: i, ProductID: fmt.Sprintf("p-%d", 1+rng.IntN(r.cfg.Products)),
				Quantity: 1 + rng.IntN(3), UnitPriceCents: int64(100 * (5 + rng.IntN(95))), AddedAt: now,
			}, schemas.CausedBy(placed)))
		}
		r.mu.Lock()
		sg := &saga{ready: make(chan struct{}), placed: placed, itemCount: lines, currency: "EUR",
			stockFail: rng.Float64() < r.cfg.StockFailShare, payFail: rng.Float64() < r.cfg.PaymentFailShare}
		r.sagas[id] = sg
		r.st.Orders++
		r.mu.Unlock()
		err := r.publish(ctx, evs...)
		close(sg.ready)
		if err != nil {
			return err
		}
	}
	return nil
}

// react is the three services' event handlers; it returns their reactions.
func (r *run) react(ev schemas.Event) []schemas.Event {
	r.mu.Lock()
	s := r.sagas[ev.AggregateID]
	r.mu.Unlock()
	if s == nil {
		return nil // another run's order
	}
	// The consumer can see an order before its Publish returned here; wait so
	// OnPublish calls stay in partition order.
	<-s.ready
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.done {
		return nil
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	by := schemas.CausedBy(ev)
	switch p := ev.Payload.(type) {
	case *events.OrderItemAdded: // stock service
		s.items = append(s.items, *p)
		if len(s.items) < s.itemCount {
			return nil
		}
		if s.stockFail {
			first := s.items[0]
			return []schemas.Event{schemas.NewEvent(&events.StockReservationFailed{
				OrderID: p.OrderID, ProductID: first.ProductID, Requested: first.Quantity, Available: first.Quantity - 1,
				Reason: "out_of_stock", FailedAt: now}, by)}
		}
		res := &events.StockReserved{OrderID: p.OrderID, ReservationID: "stock-" + uuid.NewString(), ReservedAt: now}
		for _, it := range s.items {
			res.Lines = append(res.Lines, events.StockLine{ProductID: it.ProductID, Quantity: it.Quantity})
		}
		s.reserved = res
		return []schemas.Event{schemas.NewEvent(res, by)}
	case *events.StockReserved: // payment service
		var total int64
		for _, it := range s.items {
			total += int64(it.Quantity) * it.UnitPriceCents
		}
		if s.payFail {
			return []schemas.Event{schemas.NewEvent(&events.PaymentFailed{OrderID: p.OrderID, PaymentID: "pay-" + uuid.NewString(),
				AmountCents: total, Currency: s.currency, Reason: "card_declined", FailedAt: now}, by)}
		}
		ref := "psp-" + uuid.NewString()[:8]
		return []schemas.Event{schemas.NewEvent(&events.PaymentConfirmed{OrderID: p.OrderID, PaymentID: "pay-" + uuid.NewString(),
			AmountCents: total, Currency: s.currency, ProviderReference: &ref, ConfirmedAt: now, Method: "card"}, by)}
	case *events.PaymentConfirmed: // order service
		return []schemas.Event{schemas.NewEvent(&events.OrderConfirmed{OrderID: p.OrderID, TotalCents: p.AmountCents, Currency: p.Currency, ConfirmedAt: now}, by)}
	case *events.PaymentFailed: // stock service compensates
		return []schemas.Event{schemas.NewEvent(&events.StockReleased{OrderID: p.OrderID, ReservationID: s.reserved.ReservationID,
			Lines: s.reserved.Lines, Reason: "payment_failed", ReleasedAt: now}, by)}
	case *events.StockReleased: // order service
		return []schemas.Event{schemas.NewEvent(&events.OrderCancelled{OrderID: p.OrderID, Reason: "payment_failed", CancelledAt: now}, by)}
	case *events.StockReservationFailed: // order service
		return []schemas.Event{schemas.NewEvent(&events.OrderCancelled{OrderID: p.OrderID, Reason: "out_of_stock", CancelledAt: now}, by)}
	case *events.OrderConfirmed:
		s.done = true
		r.st.Confirmed++
	case *events.OrderCancelled:
		s.done = true
		if p.Reason == "out_of_stock" {
			r.st.OutOfStock++
		} else {
			r.st.PaymentFailed++
		}
	}
	return nil
}
