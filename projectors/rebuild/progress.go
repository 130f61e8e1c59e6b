package rebuild

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-dev/reel/projectors/store"
)

// PartitionProgress is one partition's replay progress.
type PartitionProgress struct {
	Topic     string
	Partition int32
	Start     int64 // first offset to replay
	Applied   int64 // highest offset the new generation holds in every table (-1: none)
	End       int64 // end offset (next offset to be written) as last refreshed
}

// Replayed is how many offsets of the partition are done.
func (p PartitionProgress) Replayed() int64 { return max(0, min(p.Applied+1, p.End)-p.Start) }

// Total is how many offsets the partition has to replay.
func (p PartitionProgress) Total() int64 { return max(0, p.End-p.Start) }

// Lag is how many offsets the partition is behind its end (store.Lag).
func (p PartitionProgress) Lag() int64 { return store.Lag(p.End, p.Applied, p.Start) }

// Progress is a snapshot of a rebuild's progress.
type Progress struct {
	Projection string
	Generation int
	Partitions []PartitionProgress
	Replayed   int64
	Total      int64
	Lag        int64
	Rate       float64       // offsets/s over the recent window
	ETA        time.Duration // Lag / Rate; 0 when unknown
	Elapsed    time.Duration
}

// Ratio is Replayed/Total (1 when there is nothing to replay).
func (p Progress) Ratio() float64 {
	if p.Total <= 0 {
		return 1
	}
	return float64(p.Replayed) / float64(p.Total)
}

// tracker turns periodic position samples into rates and an ETA.
type tracker struct {
	started time.Time
	samples []sample // recent window
	window  time.Duration
}

type sample struct {
	at       time.Time
	replayed int64
}

func newTracker(now time.Time) *tracker { return &tracker{started: now, window: 10 * time.Second} }

func (t *tracker) observe(now time.Time, parts []PartitionProgress) Progress {
	var p Progress
	p.Partitions = append([]PartitionProgress(nil), parts...)
	sort.Slice(p.Partitions, func(i, j int) bool {
		a, b := p.Partitions[i], p.Partitions[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	for _, pp := range parts {
		p.Replayed += pp.Replayed()
		p.Total += pp.Total()
		p.Lag += pp.Lag()
	}
	t.samples = append(t.samples, sample{now, p.Replayed})
	for len(t.samples) > 2 && now.Sub(t.samples[0].at) > t.window {
		t.samples = t.samples[1:]
	}
	if first := t.samples[0]; now.Sub(first.at) > 0 && len(t.samples) > 1 {
		p.Rate = float64(p.Replayed-first.replayed) / now.Sub(first.at).Seconds()
	}
	if p.Rate > 0 {
		p.ETA = time.Duration(float64(p.Lag) / p.Rate * float64(time.Second))
	}
	p.Elapsed = now.Sub(t.started)
	return p
}

// Metrics are the rebuild's Prometheus metrics, registered on an injected
// registry (nil: not registered).
type Metrics struct {
	ratio *prometheus.GaugeVec
	rate  *prometheus.GaugeVec
	eta   *prometheus.GaugeVec
	lag   *prometheus.GaugeVec
	cut   *prometheus.GaugeVec
}

// NewMetrics creates the rebuild metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"projection", "generation"}
	m := &Metrics{
		ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reel_rebuild_progress_ratio",
			Help: "Share of the offsets to replay that the new generation holds (0..1)."}, labels),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reel_rebuild_events_per_second",
			Help: "Offsets replayed per second over the last 10 seconds."}, labels),
		eta: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reel_rebuild_eta_seconds",
			Help: "Estimated seconds until the new generation reaches the end of its topics."}, labels),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reel_rebuild_lag_offsets",
			Help: "Offsets the new generation is behind the end of its topics."}, labels),
		cut: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reel_rebuild_cutover_seconds",
			Help: "Duration of the last view switch (all CREATE OR REPLACE VIEW statements)."}, labels),
	}
	if reg != nil {
		reg.MustRegister(m.ratio, m.rate, m.eta, m.lag, m.cut)
	}
	return m
}

func (m *Metrics) set(p Progress) {
	l := prometheus.Labels{"projection": p.Projection, "generation": fmt.Sprint(p.Generation)}
	m.ratio.With(l).Set(p.Ratio())
	m.rate.With(l).Set(p.Rate)
	m.eta.With(l).Set(p.ETA.Seconds())
	m.lag.With(l).Set(float64(p.Lag))
}

// Reporter shows progress to a human: a redrawn bar on a terminal, a plain
// line per call otherwise.
type Reporter struct {
	W   io.Writer
	TTY bool
}

func (r Reporter) show(p Progress, state string) {
	if r.W == nil {
		return
	}
	eta := "?"
	if p.ETA > 0 {
		eta = p.ETA.Round(time.Second).String()
	}
	if !r.TTY {
		fmt.Fprintf(r.W, "rebuild %s g%d %s: %d/%d offsets (%.1f%%), lag %d, %.0f ev/s, eta %s\n",
			p.Projection, p.Generation, state, p.Replayed, p.Total, 100*p.Ratio(), p.Lag, p.Rate, eta)
		return
	}
	const width = 30
	n := int(p.Ratio() * width)
	bar := strings.Repeat("█", n) + strings.Repeat("░", width-n)
	fmt.Fprintf(r.W, "\r\033[K%s g%d %s %s %5.1f%% %d/%d lag %d %.0f ev/s eta %s",
		p.Projection, p.Generation, state, bar, 100*p.Ratio(), p.Replayed, p.Total, p.Lag, p.Rate, eta)
}

func (r Reporter) done() {
	if r.W != nil && r.TTY {
		fmt.Fprintln(r.W)
	}
}
