package rebuild_test

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var t0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

// world generates seat events and folds them independently of the
// projection: per conference, the state after each counted event, so a
// query answer can be checked against "some prefix of that conference's
// events" in O(1).
type world struct {
	mu       sync.Mutex
	rng      *rand.Rand
	confs    int
	n        int
	events   []schemas.Event
	prefixes map[string][]prefix // conference → state after k reservations+cancellations
	last     map[int32]int64     // highest produced offset per partition
}

type prefix struct{ reserved int64 }

func newWorld(seed int64, confs int) *world {
	return &world{rng: rand.New(rand.NewSource(seed)), confs: confs, prefixes: map[string][]prefix{}, last: map[int32]int64{}}
}

func (w *world) conf(i int) string { return fmt.Sprintf("conf-%03d", i) }

// setup returns the events creating every conference.
func (w *world) setup() []schemas.Event {
	var evs []schemas.Event
	for c := 0; c < w.confs; c++ {
		id := w.conf(c)
		evs = append(evs, schemas.NewEvent(&events.ConferenceCreated{ConferenceID: id, Name: "Conf " + id, StartsAt: t0, EndsAt: t0.Add(48 * time.Hour), TimeZone: "UTC"}, schemas.At(t0)))
		for _, st := range []string{"general", "vip"} {
			evs = append(evs, schemas.NewEvent(&events.SeatsAdded{ConferenceID: id, SeatType: st, Quantity: 100000, PriceCents: 10000, Currency: "EUR"}, schemas.At(t0)))
		}
	}
	return evs
}

// next returns n random reservations and cancellations.
func (w *world) next(n int) []schemas.Event {
	var evs []schemas.Event
	for i := 0; i < n; i++ {
		w.n++
		id := w.conf(w.rng.Intn(w.confs))
		st := []string{"general", "vip"}[w.rng.Intn(2)]
		q := 1 + w.rng.Intn(4)
		at := t0.Add(time.Duration(w.n) * time.Millisecond)
		if w.rng.Intn(10) == 0 {
			evs = append(evs, schemas.NewEvent(&events.SeatReservationCancelled{ConferenceID: id, ReservationID: fmt.Sprint("r", w.n), SeatType: st, Quantity: q, Reason: "changed plans", CancelledAt: at}, schemas.At(at)))
			continue
		}
		evs = append(evs, schemas.NewEvent(&events.SeatsReserved{ConferenceID: id, ReservationID: fmt.Sprint("r", w.n), SeatType: st, Quantity: q, AttendeeEmail: "a@example.com", ReservedAt: at}, schemas.At(at)))
	}
	return evs
}

// record folds produced events (in production order, which is the order
// within each conference's partition).
func (w *world) record(evs []schemas.Event, recs []*kgo.Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, ev := range evs {
		w.events = append(w.events, ev)
		r := recs[i]
		w.last[r.Partition] = max(w.last[r.Partition], r.Offset)
		var id string
		var d int64
		switch e := ev.Payload.(type) {
		case *events.SeatsReserved:
			id, d = e.ConferenceID, int64(e.Quantity)
		case *events.SeatReservationCancelled:
			id, d = e.ConferenceID, -int64(e.Quantity)
		default:
			continue
		}
		ps := w.prefixes[id]
		if len(ps) == 0 {
			ps = append(ps, prefix{})
		}
		ps = append(ps, prefix{reserved: ps[len(ps)-1].reserved + d})
		w.prefixes[id] = ps
	}
}

// fold is the final reserved seats per conference.
func (w *world) fold() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int64{}
	for c := 0; c < w.confs; c++ {
		id := w.conf(c)
		ps := w.prefixes[id]
		if len(ps) == 0 {
			out[id] = 0
			continue
		}
		out[id] = ps[len(ps)-1].reserved
	}
	return out
}

func (w *world) counted() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, ps := range w.prefixes {
		n += int64(len(ps) - 1)
	}
	return n
}

func (w *world) offsets() map[string]map[int32]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[int32]int64{}
	for p, o := range w.last {
		m[p] = o
	}
	return map[string]map[int32]int64{seats.Topic: m}
}

// check verifies one answer row: (reservations+cancellations) events of
// the conference applied, in order, and nothing else.
func (w *world) check(conf string, reserved int64, k int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ps := w.prefixes[conf]
	if k == 0 && len(ps) == 0 {
		if reserved != 0 {
			return fmt.Errorf("%s: 0 events but %d reserved", conf, reserved)
		}
		return nil
	}
	if k >= len(ps) {
		return fmt.Errorf("%s: %d events applied but only %d produced", conf, k, len(ps)-1)
	}
	if ps[k].reserved != reserved {
		return fmt.Errorf("%s: after %d events the fold has %d reserved, the view says %d", conf, k, ps[k].reserved, reserved)
	}
	return nil
}

type env struct {
	t       *testing.T
	brokers []string
	ch      testenv.CH
	codec   *schemas.Codec
	prod    *kgo.Client
	w       *world
	// projFor, when set, gives supervise a projection per generation;
	// runOpts are added to every runner startRunner starts.
	projFor func(gen int) *projection.Projection
	runOpts []projectors.Opt
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(16<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(context.Background(), partitions, 1, nil, seats.Topic); err != nil {
		t.Logf("create topic: %v", err)
	}
	return &env{t: t, brokers: brokers, ch: ch, codec: codec, prod: cl, w: newWorld(1, 20)}
}

func (e *env) produce(evs []schemas.Event) {
	e.t.Helper()
	ctx := context.Background()
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		r, err := e.codec.Encode(ctx, ev)
		if err != nil {
			e.t.Fatal(err)
		}
		recs[i] = r
	}
	for i := 0; i < len(recs); i += 5000 {
		res := e.prod.ProduceSync(ctx, recs[i:min(i+5000, len(recs))]...)
		if err := res.FirstErr(); err != nil {
			e.t.Fatal(err)
		}
	}
	e.w.record(evs, recs)
}

// supervisor stands in for `reel project`: it runs a Runner for every live
// or standby generation of p and stops the others.
type supervisor struct {
	mu      sync.Mutex
	running map[int]*supRun
}

type supRun struct {
	cancel context.CancelFunc
	done   chan error
}

func (e *env) supervise(ctx context.Context, p func() *projection.Projection, every time.Duration) *supervisor {
	s := &supervisor{running: map[int]*supRun{}}
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			gens, err := store.Generations(ctx, e.ch.Conn, p().Name)
			if err == nil {
				want := map[int]bool{}
				for _, g := range gens {
					if g.Status == store.StatusLive || g.Status == store.StatusStandby {
						want[g.Generation] = true
					}
				}
				s.mu.Lock()
				for g := range want {
					if s.running[g] == nil {
						proj := p()
						if e.projFor != nil {
							proj = e.projFor(g)
						}
						s.running[g] = e.startRunner(proj, g)
					}
				}
				for g, r := range s.running {
					if !want[g] {
						r.cancel()
						<-r.done
						delete(s.running, g)
					}
				}
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				s.stopAll()
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *supervisor) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for g, r := range s.running {
		r.cancel()
		<-r.done
		delete(s.running, g)
	}
}

func (e *env) startRunner(p *projection.Projection, gen int, opts ...projectors.Opt) *supRun {
	r, err := projectors.NewRunner(p, e.ch.Conn, e.codec, append([]projectors.Opt{projectors.Brokers(e.brokers...),
		projectors.Generation(gen), projectors.WithoutViews(), projectors.KafkaOpts(kgo.ClientID("test-projector"))}, append(append([]projectors.Opt(nil), e.runOpts...), opts...)...)...)
	if err != nil {
		e.t.Error(err)
		return &supRun{cancel: func() {}, done: closedErr()}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return &supRun{cancel: cancel, done: done}
}

func closedErr() chan error { c := make(chan error, 1); c <- nil; return c }

// waitApplied waits until generation gen holds every produced offset.
func (e *env) waitApplied(p string, gen int, d time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := store.WaitApplied(ctx, e.ch.Conn, p, gen, e.w.offsets(), 50*time.Millisecond); err != nil {
		e.t.Fatal(err)
	}
}

// viewAnswer reads the reserved seats and applied-event counts per
// conference from the stable view.
func (e *env) viewAnswer(ctx context.Context) (map[string][2]int64, error) {
	rows, err := e.ch.Conn.Query(ctx, "SELECT conference_id, seats_reserved, reservations, cancellations FROM seats_reserved_per_conference")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][2]int64{}
	for rows.Next() {
		var id string
		var reserved int64
		var r, c uint32
		if err := rows.Scan(&id, &reserved, &r, &c); err != nil {
			return nil, err
		}
		out[id] = [2]int64{reserved, int64(r) + int64(c)}
	}
	return out, rows.Err()
}

func (e *env) assertFold(ctx context.Context, what string) {
	e.t.Helper()
	got, err := e.viewAnswer(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	want := e.w.fold()
	var diffs []string
	for id, v := range want {
		if got[id][0] != v {
			diffs = append(diffs, fmt.Sprintf("%s: fold %d, view %d", id, v, got[id][0]))
		}
	}
	if len(got) != len(want) {
		diffs = append(diffs, fmt.Sprintf("%d conferences in the view, %d in the fold", len(got), len(want)))
	}
	if len(diffs) > 0 {
		e.t.Fatalf("%s: view differs from the fold of %d events: %v", what, len(e.w.events), diffs)
	}
}

// viewGeneration returns the generation the view's definition names.
func (e *env) viewGeneration(ctx context.Context, view string) int {
	e.t.Helper()
	var q string
	if err := e.ch.Conn.QueryRow(ctx, "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = ?", view).Scan(&q); err != nil {
		e.t.Fatal(err)
	}
	var named []int
	for g := 1; g < 100; g++ {
		if containsWord(q, fmt.Sprintf("__g%d", g)) {
			named = append(named, g)
		}
	}
	switch len(named) {
	case 0:
		e.t.Fatalf("view %s names no generation: %s", view, q)
	case 1:
		return named[0]
	}
	// A switchable view (a union of generations): the one _reel_live serves.
	g, err := store.LiveServed(ctx, e.ch.Conn, "seats")
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w && (i+len(w) == len(s) || !(s[i+len(w)] >= '0' && s[i+len(w)] <= '9')) {
			return true
		}
	}
	return false
}
