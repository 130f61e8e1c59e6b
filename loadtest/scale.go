package loadtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/store"
)

// Scale is the scale curve (-scale): throughput and freshness against
// partitions and projector replicas, and the cost of a full replay as the
// history grows.
type Scale struct {
	Events  int64          `json:"events_per_step"` // produced in each partitions/replicas step
	Steps   []ScaleStep    `json:"steps"`
	History []HistoryPoint `json:"history"`
}

// ScaleStep is one (partitions, replicas) point.
type ScaleStep struct {
	Partitions int     `json:"partitions"`
	Replicas   int     `json:"replicas"`
	Rate       Rate    `json:"rate"`        // events/s with the producer flat out, first durable batch → last event
	FreshRate  float64 `json:"fresh_rate"`  // events/s produced during the freshness level (half of Rate)
	Samples    int     `json:"samples"`     // freshness samples
	P50        float64 `json:"p50_ms"`      // freshness
	P99        float64 `json:"p99_ms"`      // freshness
	CPUSeconds float64 `json:"cpu_seconds"` // all replicas, the whole step
	PeakRSSMB  float64 `json:"peak_rss_mb"` // highest replica
	Error      string  `json:"error,omitempty"`
}

// HistoryPoint is one full replay of a history of Events events.
type HistoryPoint struct {
	Events        int64   `json:"events"`
	Rate          Rate    `json:"rate"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUSecPerMEv  float64 `json:"cpu_seconds_per_million_events"`
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	ReplaySeconds float64 `json:"replay_seconds"` // start of the process → last event applied
	Error         string  `json:"error,omitempty"`
}

// replicaSet is the projector processes of one scale step, one consumer
// group per projection shared by all of them.
type replicaSet struct {
	procs []*projectorProc
}

// applied is the events applied across the replicas: per partition the
// highest position any replica reports (a partition that moved between
// replicas is counted once).
func (rs *replicaSet) applied(ctx context.Context) (int64, error) {
	var all []map[string]int64
	for _, p := range rs.procs {
		st, err := p.stats(ctx)
		if err != nil {
			return 0, err
		}
		all = append(all, st.Parts)
	}
	return mergeParts(all), nil
}

func mergeParts(all []map[string]int64) int64 {
	best := map[string]int64{}
	for _, m := range all {
		for k, v := range m {
			best[k] = max(best[k], v)
		}
	}
	var n int64
	for _, v := range best {
		n += v
	}
	return n
}

// usage is the CPU time of all replicas and the highest peak RSS.
func (rs *replicaSet) usage() (cpu time.Duration, peakMB float64) {
	for _, p := range rs.procs {
		if u, err := readProc(p.cmd.Process.Pid); err == nil {
			cpu += u.CPU
		}
		if h, err := readHWM(p.cmd.Process.Pid); err == nil {
			peakMB = max(peakMB, float64(h)/(1<<20))
		}
	}
	return cpu, peakMB
}

func (rs *replicaSet) stop() {
	for _, p := range rs.procs {
		p.stop()
	}
}

// waitApplied waits until the producer has finished (finished closed)
// and the replicas applied all it produced. It returns the time from the
// replicas' first durable batch after the call to the end, and the events
// applied in it.
func (rs *replicaSet) waitApplied(ctx context.Context, produced *atomic.Int64, finished <-chan struct{}, limit time.Duration) (time.Duration, int64, error) {
	t0 := time.Now()
	var first time.Time
	var firstN int64
	for time.Since(t0) < limit {
		a, err := rs.applied(ctx)
		now := time.Now()
		if err == nil && first.IsZero() && a > 0 {
			first, firstN = now, a
		}
		select {
		case <-finished:
			if n := produced.Load(); err == nil && a >= n {
				if !now.After(first) {
					return now.Sub(t0), n, nil
				}
				return now.Sub(first), n - firstN, nil
			}
		default:
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, 0, fmt.Errorf("the replicas did not apply %d events within %s", produced.Load(), limit)
}

// closed is a finished channel for when the producer is already done.
func closed() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// scaleEnv is one step's database, topics and producer.
type scaleEnv struct {
	conn   driver.Conn
	dsn    string
	prefix string
	pd     *producer
}

func (e *scaleEnv) close() { e.conn.Close() }

// newScaleEnv recreates the scale database and, with partitions > 0,
// creates topics with that many partitions under prefix and a producer
// for them.
func (r *run) newScaleEnv(ctx context.Context, prefix string, partitions int) (*scaleEnv, error) {
	db := r.cfg.Database + "_scale"
	for _, s := range []string{"DROP DATABASE IF EXISTS " + db + " SYNC", "CREATE DATABASE " + db} {
		if err := r.conn.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	e := &scaleEnv{prefix: prefix}
	var err error
	if e.dsn, err = chclient.WithDatabase(r.cfg.DSN, db); err != nil {
		return nil, err
	}
	if e.conn, err = chclient.Open(ctx, e.dsn); err != nil {
		return nil, err
	}
	if partitions == 0 {
		return e, nil
	}
	cat, err := events.Load()
	if err != nil {
		e.close()
		return nil, err
	}
	var topics []string
	for _, t := range cat.Topics() {
		topics = append(topics, prefix+t)
	}
	resp, err := kadm.NewClient(r.kcl).CreateTopics(ctx, int32(partitions), -1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		e.close()
		return nil, fmt.Errorf("create topics %v: %w", topics, err)
	}
	e.pd = &producer{p: r.pd.p, g: newGen(r.cfg.Aggregates, r.cfg.ZipfS, r.cfg.Seed), prefix: prefix}
	return e, nil
}

// startReplicas starts n projector processes of the load test's
// projections as generation gen in e and waits until every projection's
// consumer group is stable with n members.
func (r *run) startReplicas(ctx context.Context, e *scaleEnv, n, gen int, replay bool) (*replicaSet, error) {
	rs := &replicaSet{}
	for i := 0; i < n; i++ {
		p, err := startProjector(ctx, r.cfg.Log, r.cfg.MemoryLimitMB, r.childArgs(e.dsn, e.prefix, projections, gen, replay)...)
		if err != nil {
			rs.stop()
			return nil, err
		}
		rs.procs = append(rs.procs, p)
		r.mu.Lock()
		r.replicas = append(r.replicas, p)
		r.mu.Unlock()
	}
	adm := kadm.NewClient(r.kcl)
	var groups []string
	for _, name := range projections {
		groups = append(groups, store.Group(name, gen))
	}
	for t0 := time.Now(); time.Since(t0) < 60*time.Second && ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
		described, err := adm.DescribeGroups(ctx, groups...)
		if err != nil {
			continue
		}
		stable := 0
		for _, g := range described {
			if g.State == "Stable" && len(g.Members) == n {
				stable++
			}
		}
		if stable == len(groups) {
			return rs, nil
		}
	}
	rs.stop()
	return nil, fmt.Errorf("consumer groups %v not stable with %d members within 60s", groups, n)
}

// scale measures the scale curve. Every step has its own topics (the run's
// prefix + a step tag) and the database <database>_scale, recreated.
func (r *run) scale(ctx context.Context) error {
	sc := &Scale{Events: r.cfg.ScaleEvents}
	r.res.Scale = sc
	type point struct{ parts, replicas int }
	var points []point
	for _, p := range r.cfg.ScalePartitions {
		points = append(points, point{p, 1})
	}
	most := slices.Max(r.cfg.ScalePartitions)
	for _, n := range r.cfg.ScaleReplicas {
		if n != 1 || !slices.Contains(r.cfg.ScalePartitions, most) {
			points = append(points, point{most, n})
		}
	}
	for i, pt := range points {
		r.setPhase(fmt.Sprintf("scale p%d r%d", pt.parts, pt.replicas))
		st := r.scaleStep(ctx, fmt.Sprintf("%ss%d.", r.prefix, i), pt.parts, pt.replicas)
		sc.Steps = append(sc.Steps, st)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return r.historyCurve(ctx, sc)
}

// scaleStep: replicas projector processes on fresh topics of partitions
// partitions; the producer sends ScaleEvents flat out (throughput), then
// runs at half that rate for ScaleLevelTime with the freshness prober.
func (r *run) scaleStep(ctx context.Context, prefix string, partitions, replicas int) (st ScaleStep) {
	st = ScaleStep{Partitions: partitions, Replicas: replicas}
	fail := func(err error) ScaleStep {
		st.Error = err.Error()
		r.note("scale step %d partitions × %d replicas: %v", partitions, replicas, err)
		return st
	}
	e, err := r.newScaleEnv(ctx, prefix, partitions)
	if err != nil {
		return fail(err)
	}
	defer e.close()
	rs, err := r.startReplicas(ctx, e, replicas, 1, false)
	if err != nil {
		return fail(err)
	}
	defer rs.stop()
	type result struct {
		d   time.Duration
		n   int64
		err error
	}
	finished, res := make(chan struct{}), make(chan result, 1)
	go func() {
		d, n, err := rs.waitApplied(ctx, &e.pd.produced, finished, 10*time.Minute)
		res <- result{d, n, err}
	}()
	_, _, err = e.pd.run(ctx, 0, time.Hour, r.cfg.ScaleEvents, nil)
	close(finished)
	got := <-res
	if err == nil {
		err = got.err
	}
	if err != nil {
		return fail(err)
	}
	st.Rate = rate(got.n, got.d)

	pr := &prober{conn: e.conn}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go pr.run(pctx)
	pn, pdur, err := e.pd.run(ctx, st.Rate.PerSec/2, r.cfg.ScaleLevelTime, 0, pr)
	if err != nil {
		return fail(err)
	}
	st.FreshRate = rate(pn, pdur).PerSec
	if _, _, err := rs.waitApplied(ctx, &e.pd.produced, closed(), 5*time.Minute); err != nil {
		return fail(err)
	}
	time.Sleep(300 * time.Millisecond) // last probe rounds
	lat, _, _ := pr.take()
	st.Samples, st.P50, st.P99 = len(lat), percentile(lat, 0.5), percentile(lat, 0.99)
	cpu, peak := rs.usage()
	st.CPUSeconds, st.PeakRSSMB = cpu.Seconds(), peak
	r.progress("scale: %d partitions × %d replicas: %.0f events/s; freshness at %.0f/s p50 %.0f ms p99 %.0f ms; CPU %.1f s, peak RSS %.0f MB",
		partitions, replicas, st.Rate.PerSec, st.FreshRate, st.P50, st.P99, st.CPUSeconds, st.PeakRSSMB)
	return st
}

// historyCurve grows one history (the run's partitions) to each of
// ScaleHistory's sizes in turn and replays all of it each time in a fresh
// projector process and a fresh database: CPU seconds per million events
// and peak RSS against the history's size.
func (r *run) historyCurve(ctx context.Context, sc *Scale) error {
	prefix := r.prefix + "h."
	var pd *producer
	for i, size := range r.cfg.ScaleHistory {
		r.setPhase(fmt.Sprintf("scale history %d", size))
		hp := HistoryPoint{Events: size}
		err := func() error {
			e, err := r.newScaleEnv(ctx, prefix, historyPartitions(pd, r.cfg.Partitions))
			if err != nil {
				return err
			}
			defer e.close()
			if pd == nil {
				pd = e.pd
			}
			if more := size - pd.produced.Load(); more > 0 {
				if _, _, err := pd.run(ctx, 0, time.Hour, more, nil); err != nil {
					return err
				}
			}
			total := pd.produced.Load()
			hp.Events = total
			t0 := time.Now()
			// A new generation each time: its consumer group has no
			// committed offsets of the previous replays.
			rs, err := r.startReplicas(ctx, e, 1, i+1, true)
			if err != nil {
				return err
			}
			defer rs.stop()
			d, n, err := rs.waitApplied(ctx, &pd.produced, closed(), time.Hour)
			if err != nil {
				return err
			}
			hp.Rate, hp.ReplaySeconds = rate(n, d), time.Since(t0).Seconds()
			cpu, peak := rs.usage()
			hp.CPUSeconds, hp.PeakRSSMB = cpu.Seconds(), peak
			hp.CPUSecPerMEv = hp.CPUSeconds / float64(total) * 1e6
			return nil
		}()
		if err != nil {
			hp.Error = err.Error()
			r.note("scale history %d: %v", size, err)
		}
		sc.History = append(sc.History, hp)
		r.progress("scale: history %d events replayed at %.0f/s; %.1f CPU s per million events; peak RSS %.0f MB",
			hp.Events, hp.Rate.PerSec, hp.CPUSecPerMEv, hp.PeakRSSMB)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// historyPartitions: the history's topics are created once, with the
// run's partitions, and grown from then on.
func historyPartitions(pd *producer, partitions int) int {
	if pd != nil {
		return 0
	}
	return partitions
}

// writeScale is the scale section of report.md.
func writeScale(f printf, sc *Scale) {
	f("\n## Scale curve (-scale)\n\n")
	f("Throughput and freshness vs partitions and projector replicas on this one machine. Each step: fresh topics and database, the replicas join one consumer group per projection (waited until stable), the producer sends %d events flat out (events/s: the replicas' first durable batch → the last event, positions merged per partition across replicas), then produces at half that rate for the freshness level. CPU seconds and peak RSS (VmHWM) of the replicas over the whole step.\n\n", sc.Events)
	f("| partitions | replicas | events/s | freshness at ev/s | samples | p50 ms | p99 ms | CPU s (all replicas) | peak RSS MB (highest replica) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range sc.Steps {
		if s.Error != "" {
			f("| %d | %d | failed: %s | | | | | | |\n", s.Partitions, s.Replicas, strings.ReplaceAll(s.Error, "|", "/"))
			continue
		}
		f("| %d | %d | %.0f | %.0f | %d | %.0f | %.0f | %.1f | %.0f |\n", s.Partitions, s.Replicas, s.Rate.PerSec, s.FreshRate, s.Samples, s.P50, s.P99, s.CPUSeconds, s.PeakRSSMB)
	}
	f("\nCost of a full replay as the history grows (one history grown step by step; each size replayed whole by a fresh projector process into a fresh database):\n\n")
	f("| history (events) | replay events/s | replay s (incl. start-up) | CPU s | CPU s per million events | peak RSS MB |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, h := range sc.History {
		if h.Error != "" {
			f("| %d | failed: %s | | | | |\n", h.Events, strings.ReplaceAll(h.Error, "|", "/"))
			continue
		}
		f("| %d | %.0f | %.1f | %.1f | %.1f | %.0f |\n", h.Events, h.Rate.PerSec, h.ReplaySeconds, h.CPUSeconds, h.CPUSecPerMEv, h.PeakRSSMB)
	}
	f("\n")
}
