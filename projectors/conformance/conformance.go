// Package conformance is the suite every projection must pass, whatever its
// logic: the runtime's promises checked against real Kafka and ClickHouse.
//
//	func TestOrders(t *testing.T) {
//		conformance.Run(t, conformance.Case{
//			Catalog:  cat,             // where its events come from
//			Bindings: events.Bindings(), // its Go payload types, if any
//			New:     shop.Orders,
//			Produce: produceShop,    // publishes events, returns them in order
//			Check:   checkOrders,    // compares the views with a fold of the events
//		})
//	}
//
// The suite runs the projection as generation 1 and checks it with Check;
// replays the same history into generation 2 and requires identical tables
// (replay is deterministic); projects generation 3 with tiny batches,
// stopping it midway and starting it again, and requires tables identical
// to generation 1 (a restart neither loses nor duplicates); finally sends a
// poison record for a new aggregate and requires that only it is parked
// while every other row stays as it was.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// Positions are the last produced offset per topic and partition.
type Positions map[string]map[int32]int64

// Add records a produced position.
func (p Positions) Add(topic string, partition int32, offset int64) {
	if p[topic] == nil {
		p[topic] = map[int32]int64{}
	}
	if o, ok := p[topic][partition]; !ok || offset > o {
		p[topic][partition] = offset
	}
}

// Case is one projection under test.
type Case struct {
	// Catalog is the catalog the projection's events come from, Bindings
	// the Go payload types its Apply expects (none: *schemas.Record).
	Catalog  *schemas.Catalog
	Bindings []schemas.Binding
	// New returns a fresh projection value.
	New func() *projection.Projection
	// Produce publishes a history to brokers and returns the events in the
	// order they were published (per aggregate) and their positions.
	Produce func(t *testing.T, brokers []string) ([]schemas.Event, Positions)
	// Check compares the projection's views (generation 1 behind them) with
	// an independent fold of events. It must not call the projection.
	Check func(t *testing.T, conn driver.Conn, events []schemas.Event)
}

// Run runs the suite.
func Run(t *testing.T, c Case) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	cat := c.Catalog
	if cat == nil {
		t.Fatal("Case.Catalog is nil")
	}
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(c.Bindings...))
	if err != nil {
		t.Fatal(err)
	}
	createTopics(t, brokers, cat.Topics())
	evs, pos := c.Produce(t, brokers)
	p := c.New()
	if len(evs) == 0 {
		t.Fatal("Produce returned no events")
	}

	gen1 := start(t, p, ch, codec, brokers, projectors.Generation(1))
	wait(t, ch.Conn, p.Name, 1, pos, gen1)

	t.Run("fold", func(t *testing.T) { c.Check(t, ch.Conn, evs) })

	t.Run("replay_is_deterministic", func(t *testing.T) {
		g := start(t, c.New(), ch, codec, brokers, projectors.Generation(2), projectors.WithoutViews(), projectors.Replay(true))
		wait(t, ch.Conn, p.Name, 2, pos, g)
		g.stop(t)
		same(t, ch.Conn, p, 1, 2)
	})

	t.Run("restart_midway", func(t *testing.T) {
		g := start(t, c.New(), ch, codec, brokers, projectors.Generation(3), projectors.WithoutViews(), projectors.BatchEvents(7), projectors.Pipeline(true))
		// Stop as soon as some batches are durable, then start again.
		deadline := time.Now().Add(60 * time.Second)
		for {
			if applied(t, ch.Conn, p, 3) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		g.stop(t)
		before := applied(t, ch.Conn, p, 3)
		g = start(t, c.New(), ch, codec, brokers, projectors.Generation(3), projectors.WithoutViews(), projectors.BatchEvents(7))
		wait(t, ch.Conn, p.Name, 3, pos, g)
		g.stop(t)
		same(t, ch.Conn, p, 1, 3)
		t.Logf("stopped with %d partitions checkpointed; restarted and matched generation 1", before)
	})

	t.Run("poison_parks_only_its_aggregate", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		poison := Positions{}
		for _, topic := range p.Topics {
			res := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("poison-aggregate"), Value: []byte{0xC3, 0x01, 1, 2, 3}})
			if err := res.FirstErr(); err != nil {
				t.Fatal(err)
			}
			poison.Add(topic, res[0].Record.Partition, res[0].Record.Offset)
		}
		wait(t, ch.Conn, p.Name, 1, poison, gen1)
		var parked, others uint64
		if err := ch.Conn.QueryRow(ctx, fmt.Sprintf("SELECT countIf(aggregate_id = 'poison-aggregate'), countIf(aggregate_id != 'poison-aggregate') FROM %s_parked", p.Name)).Scan(&parked, &others); err != nil {
			t.Fatal(err)
		}
		if int(parked) != len(p.Topics) || others != 0 {
			t.Fatalf("parked: %d poison records (want %d), %d others (want 0)", parked, len(p.Topics), others)
		}
		gen1.stop(t)
		same(t, ch.Conn, p, 1, 2) // generation 2 never saw the poison; every other row is unchanged
		c.Check(t, ch.Conn, evs)
	})
}

func createTopics(t *testing.T, brokers []string, topics []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := kadm.NewClient(cl).CreateTopics(context.Background(), 6, 1, nil, topics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			t.Fatalf("create topic %s: %v", r.Topic, r.Err)
		}
	}
}

type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, p *projection.Projection, ch testenv.CH, dec projectors.Decoder, brokers []string, opts ...projectors.Opt) *running {
	t.Helper()
	opts = append([]projectors.Opt{projectors.Brokers(brokers...), projectors.FlushInterval(20 * time.Millisecond)}, opts...)
	r, err := projectors.NewRunner(p, ch.Conn, dec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- r.Run(ctx) }()
	t.Cleanup(func() { g.cancel() })
	return g
}

func (g *running) stop(t *testing.T) {
	t.Helper()
	g.cancel()
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("projector: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("projector did not stop within 60s")
	}
}

func wait(t *testing.T, conn driver.Conn, proj string, gen int, pos Positions, g *running) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- store.WaitApplied(ctx, conn, proj, gen, pos, 20*time.Millisecond) }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-g.done:
		t.Fatalf("projector %s g%d stopped early: %v", proj, gen, err)
	}
}

// applied counts the partitions generation gen has checkpointed.
func applied(t *testing.T, conn driver.Conn, p *projection.Projection, gen int) int {
	prog, err := store.QueryProgress(context.Background(), conn, p, gen)
	if err != nil {
		t.Fatal(err)
	}
	return len(prog)
}

// same requires every non-parked table of two generations to hold the same
// rows (State tables compared after FINAL), positions included.
func same(t *testing.T, conn driver.Conn, p *projection.Projection, a, b int) {
	t.Helper()
	la, lb := store.NewLayout(p, a).Tables, store.NewLayout(p, b).Tables
	for i := range la {
		if la[i].Parked {
			continue
		}
		ca, sa := digest(t, conn, la[i])
		cb, sb := digest(t, conn, lb[i])
		if ca != cb || sa != sb {
			t.Errorf("table %s: generation %d has %d rows (digest %x), generation %d has %d rows (digest %x)", la[i].Logical, a, ca, sa, b, cb, sb)
		} else if ca == 0 {
			t.Logf("table %s is empty in both generations", la[i].Logical)
		}
	}
}

func digest(t *testing.T, conn driver.Conn, pt store.PhysTable) (rows uint64, sum uint64) {
	t.Helper()
	cols := make([]string, 0, len(pt.Columns)+3)
	for _, c := range pt.Columns {
		if strings.HasPrefix(c.Type, "Map(") {
			// A Map keeps insertion order, which Go's map iteration does
			// not fix: compare its sorted form.
			cols = append(cols, "mapSort("+c.Name+")")
			continue
		}
		cols = append(cols, c.Name)
	}
	cols = append(cols, "_topic", "_partition", "_offset", "_event_ts")
	final := ""
	if pt.State {
		final = " FINAL"
	}
	q := fmt.Sprintf("SELECT count(), sum(cityHash64(toString(tuple(%s)))) FROM %s%s", strings.Join(cols, ", "), pt.Name, final)
	if err := conn.QueryRow(context.Background(), q).Scan(&rows, &sum); err != nil {
		t.Fatalf("digest of %s: %v", pt.Name, err)
	}
	return rows, sum
}
