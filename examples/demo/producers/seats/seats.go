// Package seats is the conference demo service: a command handler for seat
// reservations that refuses overbooking, written on producers.Versioned so a
// concurrent or stale command can never oversell.
//
//	stats, err := seats.Run(ctx, seats.Config{
//		Codec: codec, Kafka: []kgo.Opt{kgo.SeedBrokers("127.0.0.1:9092")},
//		Conferences: 3, Rate: 100, Commands: 1000,
//		OnPublish: func(ev schemas.Event, pos producers.Position) { … },
//	})
package seats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/schemas"
)

// Topic is where the conference events go.
const Topic = "conference.seats"

var (
	// ErrOverbooked: fewer seats of the type are available than requested.
	ErrOverbooked = errors.New("not enough seats available")
	// ErrUnknownConference: the conference was never created.
	ErrUnknownConference = errors.New("unknown conference")
	// ErrUnknownReservation: nothing to cancel.
	ErrUnknownReservation = errors.New("unknown reservation")
)

// Handler executes seat commands against the conference aggregates.
type Handler struct {
	w     *producers.Versioned
	codec *schemas.Codec
	mu    sync.Mutex
	confs map[string]*conference
}

type conference struct {
	available    map[string]int64
	reservations map[string]events.SeatsReserved
}

// OpenHandler starts the single writer of the topic (fencing an older one)
// and rebuilds every conference from the topic.
func OpenHandler(ctx context.Context, codec *schemas.Codec, transactionalID string, kafka ...kgo.Opt) (*Handler, error) {
	h := &Handler{codec: codec, confs: map[string]*conference{}}
	w, err := producers.OpenVersioned(ctx, producers.VersionedConfig{
		Codec: codec, Topic: Topic, TransactionalID: transactionalID, Fold: h.fold, Kafka: kafka,
	})
	if err != nil {
		return nil, err
	}
	h.w = w
	return h, nil
}

// Close stops the writer.
func (h *Handler) Close() { h.w.Close() }

func (h *Handler) fold(ev schemas.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.confs[ev.AggregateID]
	if c == nil {
		c = &conference{available: map[string]int64{}, reservations: map[string]events.SeatsReserved{}}
		h.confs[ev.AggregateID] = c
	}
	switch p := ev.Payload.(type) {
	case *events.SeatsAdded:
		c.available[p.SeatType] += p.Quantity
	case *events.SeatsReserved:
		c.available[p.SeatType] -= int64(p.Quantity)
		c.reservations[p.ReservationID] = *p
	case *events.SeatReservationCancelled:
		if r, ok := c.reservations[p.ReservationID]; ok {
			c.available[r.SeatType] += int64(r.Quantity)
			delete(c.reservations, p.ReservationID)
		}
	}
}

// Available is the number of free seats of a type.
func (h *Handler) Available(conferenceID, seatType string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.confs[conferenceID]; c != nil {
		return c.available[seatType]
	}
	return 0
}

func (h *Handler) exists(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.confs[id] != nil
}

// Published is one stored event and where.
type Published struct {
	Event    schemas.Event
	Position producers.Position
}

func (h *Handler) update(ctx context.Context, id string, decide func() ([]schemas.Event, error)) ([]Published, error) {
	var evs []schemas.Event
	pos, err := h.w.Update(ctx, id, func(int64) ([]schemas.Event, error) {
		var err error
		evs, err = decide()
		return evs, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Published, len(pos))
	for i := range pos {
		ev := evs[i]
		ev.Version = h.codec.Catalog().Type(ev.Type).Current().Version
		out[i] = Published{Event: ev, Position: pos[i]}
	}
	return out, nil
}

// Create sets up a conference with seats per type; a no-op if it exists.
func (h *Handler) Create(ctx context.Context, id, name string, seats map[string]int64) ([]Published, error) {
	return h.update(ctx, id, func() ([]schemas.Event, error) {
		if h.exists(id) {
			return nil, nil
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		created := schemas.NewEvent(&events.ConferenceCreated{ConferenceID: id, Name: name, StartsAt: now.Add(30 * 24 * time.Hour), EndsAt: now.Add(32 * 24 * time.Hour), TimeZone: "UTC"})
		evs := []schemas.Event{created}
		for typ, n := range seats {
			evs = append(evs, schemas.NewEvent(&events.SeatsAdded{ConferenceID: id, SeatType: typ, Quantity: n, PriceCents: 19900, Currency: "EUR"}, schemas.CausedBy(created)))
		}
		return evs, nil
	})
}

// Reserve reserves qty seats of a type, refusing overbooking with
// ErrOverbooked.
func (h *Handler) Reserve(ctx context.Context, conferenceID, reservationID, seatType string, qty int, email string) ([]Published, error) {
	return h.update(ctx, conferenceID, func() ([]schemas.Event, error) {
		if !h.exists(conferenceID) {
			return nil, fmt.Errorf("%w: %s", ErrUnknownConference, conferenceID)
		}
		if avail := h.Available(conferenceID, seatType); avail < int64(qty) {
			return nil, fmt.Errorf("%w: %s has %d %s seats, %d requested", ErrOverbooked, conferenceID, avail, seatType, qty)
		}
		return []schemas.Event{schemas.NewEvent(&events.SeatsReserved{
			ConferenceID: conferenceID, ReservationID: reservationID, SeatType: seatType, Quantity: qty,
			AttendeeEmail: email, ReservedAt: time.Now().UTC().Truncate(time.Millisecond),
		})}, nil
	})
}

// Cancel gives a reservation's seats back.
func (h *Handler) Cancel(ctx context.Context, conferenceID, reservationID, reason string) ([]Published, error) {
	return h.update(ctx, conferenceID, func() ([]schemas.Event, error) {
		h.mu.Lock()
		var r events.SeatsReserved
		var ok bool
		if c := h.confs[conferenceID]; c != nil {
			r, ok = c.reservations[reservationID]
		}
		h.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("%w: %s in %s", ErrUnknownReservation, reservationID, conferenceID)
		}
		return []schemas.Event{schemas.NewEvent(&events.SeatReservationCancelled{
			ConferenceID: conferenceID, ReservationID: reservationID, SeatType: r.SeatType, Quantity: r.Quantity,
			Reason: reason, CancelledAt: time.Now().UTC().Truncate(time.Millisecond),
		})}, nil
	})
}

// reservationsOf lists a conference's open reservation IDs.
func (h *Handler) reservationsOf(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	if c := h.confs[id]; c != nil {
		for r := range c.reservations {
			out = append(out, r)
		}
	}
	return out
}

// Config configures Run. Zero values take the defaults in the comments.
type Config struct {
	Codec           *schemas.Codec // required
	Kafka           []kgo.Opt      // seed brokers at least
	Conferences     int            // default 3: conf-1 … conf-N (reused across runs)
	SeatTypes       []string       // default standard, vip, workshop
	SeatsPerType    int64          // default 100
	Rate            float64        // commands per second, default 50; < 0 unlimited
	Commands        int            // stop after this many commands; 0: until Duration / ctx
	Duration        time.Duration  // 0: no limit
	CancelShare     float64        // share of commands that cancel a reservation, default 0.1
	MaxSeats        int            // seats per reservation, 1..MaxSeats, default 4
	TransactionalID string         // default "reel-demo-seats"
	Seed            uint64         // random seed; 0: time-based
	// OnPublish sees every published event, in order per conference.
	OnPublish func(schemas.Event, producers.Position)
	Logger    *slog.Logger
}

// Stats summarizes a run.
type Stats struct {
	Published  producers.Counts // events per type
	Commands   int              // commands executed
	Overbooked int              // reservations refused
}

// Run creates the conferences (unless they exist) and executes commands at
// the configured rate: mostly reservations, some cancellations, refusing
// overbooking. It returns when the command count or duration is reached or
// ctx ends (then with ctx's error only if nothing went wrong otherwise).
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.Conferences <= 0 {
		cfg.Conferences = 3
	}
	if len(cfg.SeatTypes) == 0 {
		cfg.SeatTypes = []string{"standard", "vip", "workshop"}
	}
	if cfg.SeatsPerType <= 0 {
		cfg.SeatsPerType = 100
	}
	if cfg.Rate == 0 {
		cfg.Rate = 50
	}
	if cfg.CancelShare == 0 {
		cfg.CancelShare = 0.1
	}
	if cfg.MaxSeats <= 0 {
		cfg.MaxSeats = 4
	}
	if cfg.TransactionalID == "" {
		cfg.TransactionalID = "reel-demo-seats"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	st := Stats{Published: producers.Counts{}}
	h, err := OpenHandler(ctx, cfg.Codec, cfg.TransactionalID, cfg.Kafka...)
	if err != nil {
		return st, err
	}
	defer h.Close()
	record := func(ps []Published) {
		for _, p := range ps {
			st.Published[p.Event.Type]++
			if cfg.OnPublish != nil {
				cfg.OnPublish(p.Event, p.Position)
			}
		}
	}
	seats := map[string]int64{}
	for _, t := range cfg.SeatTypes {
		seats[t] = cfg.SeatsPerType
	}
	confs := make([]string, cfg.Conferences)
	for i := range confs {
		confs[i] = fmt.Sprintf("conf-%d", i+1)
		ps, err := h.Create(ctx, confs[i], fmt.Sprintf("Reel Conf #%d", i+1), seats)
		if err != nil {
			return st, err
		}
		record(ps)
	}
	pace := producers.NewPacer(cfg.Rate)
	for cfg.Commands == 0 || st.Commands < cfg.Commands {
		if err := pace.Wait(ctx); err != nil {
			break
		}
		conf := confs[rng.IntN(len(confs))]
		var ps []Published
		open := h.reservationsOf(conf)
		if len(open) > 0 && rng.Float64() < cfg.CancelShare {
			ps, err = h.Cancel(ctx, conf, open[rng.IntN(len(open))], "changed plans")
		} else {
			typ := cfg.SeatTypes[rng.IntN(len(cfg.SeatTypes))]
			ps, err = h.Reserve(ctx, conf, uuid.NewString(), typ, 1+rng.IntN(cfg.MaxSeats), fmt.Sprintf("attendee%d@example.com", rng.IntN(10000)))
		}
		st.Commands++
		switch {
		case errors.Is(err, ErrOverbooked):
			st.Overbooked++
		case err != nil:
			if ctx.Err() != nil {
				break
			}
			return st, err
		}
		record(ps)
	}
	cfg.Logger.Info("seats demo done", "commands", st.Commands, "overbooked", st.Overbooked, "events", st.Published.Total())
	if st.Commands < cfg.Commands && cfg.Duration == 0 {
		return st, ctx.Err()
	}
	return st, nil
}
