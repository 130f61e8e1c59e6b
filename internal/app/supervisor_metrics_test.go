package app

import (
	"log/slog"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-dev/reel/projectors/projection"
)

// Several projections at one generation share its metrics (registering a
// second set panicked, and the supervisor hung holding its lock); they are
// unregistered when the last of them stops.
func TestGenerationMetricsShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := &Supervisor{reg: reg, log: slog.New(slog.DiscardHandler), metrics: map[int]*genMetrics{}}
	orders, saga := &projection.Projection{Name: "orders"}, &projection.Projection{Name: "order_saga"}
	a := &genRun{p: orders, gen: 1, metrics: s.acquireMetrics(1)}
	b := &genRun{p: saga, gen: 1, metrics: s.acquireMetrics(1)}
	c := &genRun{p: orders, gen: 2, metrics: s.acquireMetrics(2)}
	if a.metrics != b.metrics || a.metrics == c.metrics {
		t.Fatal("one Metrics per generation number, shared by its projections")
	}
	registered := func(gen int) bool {
		err := prometheus.WrapRegistererWith(prometheus.Labels{"generation": strconv.Itoa(gen)}, reg).Register(
			prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_events_total", Help: "Events applied by the projection."}, []string{"projection"}))
		return err != nil
	}
	s.releaseMetrics(a)
	if !registered(1) {
		t.Fatal("generation 1's metrics unregistered while order_saga still runs")
	}
	s.releaseMetrics(b)
	if registered(1) {
		t.Fatal("generation 1's metrics still registered after its last projection stopped")
	}
	if !registered(2) {
		t.Fatal("generation 2's metrics unregistered with generation 1's")
	}
}
