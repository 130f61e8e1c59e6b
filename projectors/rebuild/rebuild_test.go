package rebuild_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/projectors/rebuild"
	"github.com/reel-dev/reel/projectors/store"
)

type logWriter struct{ t *testing.T }

func (l logWriter) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestRebuildUnderLoad is the test: the seats projection is rebuilt
// while events keep arriving and a query loop hammers its stable view. No
// query may fail; every answer must come from one complete generation
// (each conference's row equals the fold of a prefix of its own events, and
// no answer has fewer events than the history the live generation held
// before the rebuild started — a half-built generation would); after
// cut-over the view equals the fold of every event; rollback points the
// views back at g1 and it answers the same.
func TestRebuildUnderLoad(t *testing.T) {
	e := newEnv(t, 6)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := seats.Availability()
	if _, err := store.LiveGeneration(ctx, e.ch.Conn, p); err != nil {
		t.Fatal(err)
	}
	l1 := store.NewLayout(p, 1)
	if err := store.EnsureSchema(ctx, e.ch.Conn, l1); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateViews(ctx, e.ch.Conn, l1); err != nil {
		t.Fatal(err)
	}

	// History, projected live by g1; its speed is the live events/s figure.
	e.produce(e.w.setup())
	const history = 40000
	e.produce(e.w.next(history))
	t1 := time.Now()
	sctx, stopSup := context.WithCancel(ctx)
	sup := e.supervise(sctx, seats.Availability, 300*time.Millisecond)
	t.Cleanup(func() { stopSup(); sup.stopAll() })
	e.waitApplied(p.Name, 1, 3*time.Minute)
	liveRate := float64(len(e.w.events)) / time.Since(t1).Seconds()
	floor := e.w.counted()

	// Events keep arriving.
	var produced atomic.Int64
	pctx, stopProd := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		for pctx.Err() == nil {
			e.produce(e.w.next(25))
			produced.Add(25)
			time.Sleep(25 * time.Millisecond)
		}
	}()

	// The query loop.
	var queries, failed, inconsistent, regressions atomic.Int64
	var firstFail, firstBad atomic.Value
	qctx, stopQ := context.WithCancel(ctx)
	var qwg sync.WaitGroup
	for range 2 {
		qwg.Add(1)
		go func() {
			defer qwg.Done()
			seen := map[string]int64{}
			for qctx.Err() == nil {
				ans, err := e.viewAnswer(context.Background())
				queries.Add(1)
				if err != nil {
					failed.Add(1)
					firstFail.CompareAndSwap(nil, err.Error())
					continue
				}
				var total int64
				bad := ""
				for id, v := range ans {
					total += v[1]
					if err := e.w.check(id, v[0], int(v[1])); err != nil && bad == "" {
						bad = err.Error()
					}
					if v[1] < seen[id] {
						regressions.Add(1)
					}
					seen[id] = v[1]
				}
				if len(ans) != e.w.confs {
					bad = fmt.Sprintf("%d conferences in the answer, want %d", len(ans), e.w.confs)
				}
				if total < floor {
					bad = fmt.Sprintf("answer holds %d events, fewer than the %d the live generation held before the rebuild: a half-built generation", total, floor)
				}
				if bad != "" {
					inconsistent.Add(1)
					firstBad.CompareAndSwap(nil, bad)
				}
			}
		}()
	}

	reg := prometheus.NewPedanticRegistry()
	m := rebuild.NewMetrics(reg)
	var progress bytes.Buffer
	time.Sleep(500 * time.Millisecond)
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seats.Availability(),
		rebuild.Brokers(e.brokers...), rebuild.MaxLag(1000), rebuild.Handover(15*time.Second),
		rebuild.ProgressInterval(250*time.Millisecond), rebuild.WithMetrics(m),
		rebuild.WithReporter(rebuild.Reporter{W: &progress}), rebuild.Host("test"))
	if err != nil {
		t.Fatalf("rebuild: %v\nprogress:\n%s", err, progress.String())
	}
	if !res.CutOver || res.Generation != 2 || res.Replaces != 1 {
		t.Fatalf("rebuild result %+v: want g2 cut over from g1", res)
	}
	for _, d := range res.Comparison.Tables {
		t.Logf("compare: %s", d)
	}
	if res.Comparison.Tables[0].RowsA == 0 {
		t.Fatalf("comparison compared nothing: %+v", res.Comparison)
	}
	t.Logf("progress lines:\n%s", lastLines(progress.String(), 4))

	// Cut over: g2 live, g1 standby; the supervisor picks g2 up.
	gens, err := store.Generations(ctx, e.ch.Conn, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st := statuses(gens); st[1] != store.StatusStandby || st[2] != store.StatusLive {
		t.Fatalf("generations after cut-over: %v", st)
	}
	if g := e.viewGeneration(ctx, "seats_available"); g != 2 {
		t.Fatalf("view points at g%d after cut-over", g)
	}
	time.Sleep(time.Second) // answers from g2 under load
	stopProd()
	pwg.Wait()
	e.waitApplied(p.Name, 2, 2*time.Minute)
	stopQ()
	qwg.Wait()

	t.Logf("queries %d, failed %d, inconsistent %d, per-conference regressions %d; live events produced during the rebuild %d",
		queries.Load(), failed.Load(), inconsistent.Load(), regressions.Load(), produced.Load())
	if failed.Load() > 0 {
		t.Errorf("%d queries failed, first: %v", failed.Load(), firstFail.Load())
	}
	if inconsistent.Load() > 0 {
		t.Errorf("%d answers were not from one complete generation, first: %v", inconsistent.Load(), firstBad.Load())
	}
	if queries.Load() < 20 {
		t.Errorf("only %d queries ran", queries.Load())
	}
	if produced.Load() == 0 {
		t.Errorf("no events arrived during the rebuild")
	}
	e.assertFold(ctx, "after cut-over")

	t.Logf("FIGURES: live projector %.0f events/s (g1 projecting %d events of history); replay %.0f offsets/s (%d offsets in %s, batch 20000, while live events arrived and queries ran); barrier %s; view switch %s DDL (%d views; %s wall with per-view barrier re-checks)",
		liveRate, len(e.w.events)-int(produced.Load()), res.ReplayRate(), res.Replayed, res.ReplayTime.Round(time.Millisecond), res.Barrier.Round(time.Millisecond),
		res.ViewSwitch.Round(time.Microsecond), len(store.NewLayout(p, 2).ViewDDL()), res.SwitchWall.Round(time.Millisecond))

	// Metrics and status row.
	if r := gauge(t, reg, "reel_rebuild_progress_ratio"); r < 0.9 {
		t.Errorf("reel_rebuild_progress_ratio %v at the end", r)
	}
	if r := gauge(t, reg, "reel_rebuild_cutover_seconds"); r <= 0 {
		t.Errorf("reel_rebuild_cutover_seconds %v", r)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if probs, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(probs) > 0 {
		t.Errorf("promlint: %v %v", probs, err)
	}
	sts, err := store.RebuildStatuses(ctx, e.ch.Conn, p.Name)
	if err != nil || len(sts) == 0 || sts[0].Generation != 2 || sts[0].State != rebuild.StateDone || sts[0].Total == 0 {
		t.Fatalf("status rows %+v, %v", sts, err)
	}

	// Rollback: views back to g1 (kept current as standby by the supervisor).
	rb, err := rebuild.Rollback(ctx, e.ch.Conn, p, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if rb.From != 2 || rb.To != 1 {
		t.Fatalf("rollback %+v", rb)
	}
	if g := e.viewGeneration(ctx, "seats_reserved_per_conference"); g != 1 {
		t.Fatalf("view points at g%d after rollback", g)
	}
	e.waitApplied(p.Name, 1, time.Minute)
	e.assertFold(ctx, "after rollback to g1")
	t.Logf("rollback view switch %s", rb.ViewSwitch)
	stopSup()
	sup.stopAll()
}

func statuses(gens []store.GenerationInfo) map[int]string {
	out := map[int]string{}
	for _, g := range gens {
		out[g.Generation] = g.Status
	}
	return out
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// gauge returns the value of a single-series gauge.
func gauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s with one series not found", name)
	return 0
}
