package app

import (
	"context"
	"log/slog"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// A snapshot that shows a partition caught up also counts the aggregates
// parked on the way: a batch's parked rows are durable before its position
// shows it, so progress is read first. Here the batch lands between the
// two reads, whichever comes first; reading the parked counts first gave
// lag 0 with 0 parked aggregates (TestProjectStatusDLQ failed that way).
func TestLagSnapshotCountsParkedOfWhatItShowsApplied(t *testing.T) {
	const topic = "t"
	kopts := []kgo.Opt{kgo.SeedBrokers(testenv.Fake(t, kfake.SeedTopics(1, topic)).ListenAddrs()...)}
	pcl, err := kgo.NewClient(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	// Two records: the batch that parks offset 0 and applies offset 1.
	for range 2 {
		if err := pcl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	src, err := newLagSource(kopts)
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()

	landed := false // the batch is durable: one parked aggregate, applied up to 1
	c := newLagCollector()
	c.progress = func(context.Context, driver.Conn, *projection.Projection, int) ([]store.PartitionProgress, error) {
		applied := int64(-1)
		if landed {
			applied = 1
		}
		landed = true
		return []store.PartitionProgress{{Topic: topic, Partition: 0, Applied: applied}}, nil
	}
	c.parkedCounts = func(context.Context, driver.Conn, string, int) (int, int, error) {
		n := 0
		if landed {
			n = 1
		}
		landed = true
		return n, n, nil
	}
	p := &projection.Projection{Name: "p", Topics: []string{topic}}
	s := &Supervisor{log: slog.New(slog.DiscardHandler), gens: map[genKey]*genRun{{"p", 1}: {p: p, gen: 1, status: store.StatusLive}}}

	for round := range 2 {
		c.refresh(context.Background(), s, src)
		lag, parked := -1.0, -1.0
		ch := make(chan prometheus.Metric, 16)
		c.Collect(ch)
		close(ch)
		for m := range ch {
			var pb dto.Metric
			if err := m.Write(&pb); err != nil {
				t.Fatal(err)
			}
			switch m.Desc() {
			case c.offsets:
				lag = pb.GetGauge().GetValue()
			case c.parked:
				parked = pb.GetGauge().GetValue()
			}
		}
		t.Logf("round %d: lag %v, parked aggregates %v", round, lag, parked)
		if lag < 0 || parked < 0 {
			t.Fatalf("round %d: lag %v, parked %v: a series is missing", round, lag, parked)
		}
		if lag == 0 && parked != 1 {
			t.Fatalf("round %d: the snapshot shows the partition caught up but %v parked aggregates, want 1", round, parked)
		}
	}
}
