package projectors_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/schemas"
)

// TestPermanentErrorStopsPartition drops the generation's inboxes under a
// running projector: every later insert fails with UNKNOWN_TABLE, which no
// retry cures. The partitions must stop with a typed error named in Ready
// and the metrics, instead of retrying forever.
func TestPermanentErrorStopsPartition(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	topic := seats.Topic + ".perm"
	createTopic(t, brokers, topic, 2)
	p := seats.Availability()
	for i := range p.Topics {
		p.Topics[i] = topic
	}
	rng := rand.New(rand.NewSource(7))
	last := produceTo(t, brokers, topic, seatEvents(rng, 4, 200))

	cat, _ := events.Load()
	codec, _ := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	reg := prometheus.NewRegistry()
	r, err := projectors.NewRunner(p, ch.Conn, codec, projectors.Brokers(brokers...),
		projectors.WithMetrics(projectors.NewMetrics(reg)), projectors.RetryBackoff(10*time.Millisecond, 50*time.Millisecond),
		projectors.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))),
		projectors.KafkaOpts(kgo.ClientID(t.Name())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitApplied(t, ch, p.Name, topic, last, done)

	rows, err := ch.Conn.Query(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE 'seats%\\_\\_g1\\_\\_in'")
	if err != nil {
		t.Fatal(err)
	}
	var inboxes []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		inboxes = append(inboxes, n)
	}
	rows.Close()
	if len(inboxes) == 0 {
		t.Fatal("no inboxes found")
	}
	for _, n := range inboxes {
		if err := ch.Conn.Exec(ctx, "DROP TABLE "+n+" SYNC"); err != nil {
			t.Fatal(err)
		}
	}
	produceTo(t, brokers, topic, seatEvents(rng, 4, 200))

	deadline := time.Now().Add(60 * time.Second)
	for {
		err := r.Ready()
		var pe *chclient.PermanentError
		if errors.As(err, &pe) {
			if pe.Code != 60 || !strings.Contains(err.Error(), "stopped") {
				t.Fatalf("Ready: %v; want partition stopped by UNKNOWN_TABLE (60)", err)
			}
			t.Logf("Ready: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no permanent error reported by Ready; last: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopped := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "reel_projector_partitions_stopped_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	for stopped() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("reel_projector_partitions_stopped_total = %v, want both partitions", stopped())
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := testutil.CollectAndCount(reg, "reel_clickhouse_errors_total")
	if n == 0 {
		t.Fatal("reel_clickhouse_errors_total has no series")
	}
	// Stopped means stopped: no more attempts on the dropped tables.
	before := errCount(t, reg)
	time.Sleep(500 * time.Millisecond)
	if after := errCount(t, reg); after != before {
		t.Fatalf("still retrying after the permanent error: %v → %v errors", before, after)
	}
}

func errCount(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "reel_clickhouse_errors_total" {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// produceTo encodes evs and produces them to topic (not their catalog
// topic); it returns the last offset per partition.
func produceTo(t *testing.T, brokers []string, topic string, evs []schemas.Event) map[int32]int64 {
	t.Helper()
	ctx := context.Background()
	cat, err := events.Load()
	must(t, err)
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	must(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	must(t, err)
	defer cl.Close()
	var recs []*kgo.Record
	for _, ev := range evs {
		r, err := codec.Encode(ctx, ev)
		must(t, err)
		r.Topic = topic
		recs = append(recs, r)
	}
	res := cl.ProduceSync(ctx, recs...)
	must(t, res.FirstErr())
	last := map[int32]int64{}
	for _, r := range res {
		last[r.Record.Partition] = max(last[r.Record.Partition], r.Record.Offset)
	}
	return last
}

// TestPermanentClaimErrorStopsPartitions: a claim that fails for a
// permanent reason (here _reel_owners dropped under a running group) is not
// retried in a loop and does not make the member rejoin: the partitions it
// was given stay paused, named in Ready with the typed error.
func TestPermanentClaimErrorStopsPartitions(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	topic := seats.Topic + ".permclaim"
	createTopic(t, brokers, topic, 4)
	p := seats.Availability()
	for i := range p.Topics {
		p.Topics[i] = topic
	}
	last := produceTo(t, brokers, topic, seatEvents(rand.New(rand.NewSource(9)), 4, 200))
	cat, _ := events.Load()
	codec, _ := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	start := func(name string) (*projectors.Runner, context.CancelFunc, chan error) {
		r, err := projectors.NewRunner(p, ch.Conn, codec, projectors.Brokers(brokers...),
			projectors.RetryBackoff(10*time.Millisecond, 50*time.Millisecond),
			projectors.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))),
			projectors.KafkaOpts(kgo.ClientID(name), kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(time.Second)))
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		return r, cancel, done
	}
	a, stopA, doneA := start("a")
	defer func() { stopA(); <-doneA }()
	waitApplied(t, ch, p.Name, topic, last, doneA)
	b, stopB, doneB := start("b")
	deadline := time.Now().Add(60 * time.Second)
	for b.Ready() != nil || a.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("second member never became ready: a %v, b %v", a.Ready(), b.Ready())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // let b claim its share
	must(t, ch.Conn.Exec(context.Background(), "DROP TABLE _reel_owners SYNC"))
	stopB()
	must(t, <-doneB)
	for {
		err := a.Ready()
		var pe *chclient.PermanentError
		if errors.As(err, &pe) {
			if pe.Code != 60 || !strings.Contains(err.Error(), "claim partitions") {
				t.Fatalf("Ready: %v; want the claim's UNKNOWN_TABLE", err)
			}
			t.Logf("Ready: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no permanent claim error in Ready; last: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-doneA:
		t.Fatalf("member stopped: %v", err)
	case <-time.After(time.Second):
	}
}
