package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// projections under test: the shop orders (State + history) and the seats
// availability projections, one process, generation 1 live, generation 2
// the rebuild.
var projections = []string{"orders", "seats"}

// run is one load test in progress.
type run struct {
	cfg    Config
	res    *Results
	dir    string
	prefix string
	conn   driver.Conn // the run's database
	dsn    string
	regURL string
	kcl    *kgo.Client
	start  time.Time

	mu      sync.Mutex
	child   *projectorProc
	gen     int
	phase   string
	cprojs  []string // the child's projections
	cphases []string // the phases the child lived through
	lastCPU procUsage
	lastT   time.Time
	pd      *producer

	replicas []*projectorProc // the scale curve's projector processes
	cpu      *cpuSampler      // the sampler's only
}

// Run runs the whole load test and writes results/<timestamp>/report.md,
// results.json and the plots. It returns the results directory.
func Run(ctx context.Context, cfg Config) (string, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return "", err
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	r := &run{cfg: cfg, start: time.Now(), cpu: newCPUSampler(cfg.Watch)}
	stamp := r.start.UTC().Format("20060102-150405")
	r.dir = filepath.Join(cfg.Out, stamp)
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return "", err
	}
	r.prefix = "lt" + stamp + "."
	r.res = &Results{Started: r.start.UTC(), Dir: r.dir, Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		Brokers: strings.Join(cfg.Brokers, ",")},
		Config: RunConfig{Partitions: cfg.Partitions, Aggregates: cfg.Aggregates, ZipfS: cfg.ZipfS, Rate: cfg.Rate,
			MaxDuration: cfg.MaxDuration.String(), Levels: cfg.Levels, LevelTime: cfg.LevelTime.String(), Batch: cfg.Batch,
			MemoryLimitMB: cfg.MemoryLimitMB, Projections: projections, TopicPrefix: r.prefix}}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.res.Machine.LoadAvg = strings.TrimSpace(string(b))
	}
	err := r.run(ctx)
	if err != nil {
		r.note("run stopped early: %v", err)
	}
	if werr := writeReport(r.dir, r.res); werr != nil {
		return r.dir, errors.Join(err, werr)
	}
	return r.dir, err
}

func (r *run) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
	r.progress("note: "+format, args...)
}

func (r *run) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "[%6.1fs] "+format+"\n", append([]any{time.Since(r.start).Seconds()}, args...)...)
	}
}

func (r *run) run(ctx context.Context) error {
	if err := r.setup(ctx); err != nil {
		return err
	}
	defer r.conn.Close()
	defer r.kcl.Close()
	sctx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	go r.sampler(sctx)

	// Generation 1, live.
	if err := r.startChild(ctx, 1, false); err != nil {
		return err
	}
	if err := r.maxPhase(ctx); err != nil {
		return err
	}
	if err := r.freshness(ctx); err != nil {
		return err
	}
	stats, _ := r.child.stats(ctx)
	r.stopChild()
	r.setPhase("raw consume")
	if err := r.rawConsume(ctx); err != nil {
		r.note("raw consume failed: %v", err)
	}
	r.setPhase("raw insert")
	if err := r.rawInsert(ctx, stats); err != nil {
		r.note("raw insert failed: %v", err)
	}
	r.setPhase("insert cost")
	if err := r.insertCost(ctx); err != nil {
		r.note("insert cost failed: %v", err)
	}
	if err := r.rebuild(ctx); err != nil {
		r.note("rebuild failed: %v", err)
	}
	if err := r.appendOnly(ctx); err != nil {
		r.note("append-only projection failed: %v", err)
	}
	r.setPhase("peer")
	if r.cfg.Peer {
		r.peer(ctx)
	} else {
		r.res.Peer = Peer{Name: "ClickHouse Kafka engine (in libchdb)", Reason: "disabled with -peer=false"}
	}
	if r.cfg.Scale {
		if err := r.scale(ctx); err != nil {
			r.note("scale curve stopped early: %v", err)
		}
	}
	stopSampler()
	r.finish()
	return nil
}

// setup creates the database, the schema registry, the topics and the
// producer.
func (r *run) setup(ctx context.Context) error {
	admin, err := chclient.Open(ctx, r.cfg.DSN)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := admin.QueryRow(ctx, "SELECT version()").Scan(&r.res.Machine.ClickHouse); err != nil {
		return fmt.Errorf("ClickHouse at %s: %w", chclient.Redact(r.cfg.DSN), err)
	}
	for _, s := range []string{"DROP DATABASE IF EXISTS " + r.cfg.Database + " SYNC", "CREATE DATABASE " + r.cfg.Database} {
		if err := admin.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	if r.dsn, err = chclient.WithDatabase(r.cfg.DSN, r.cfg.Database); err != nil {
		return err
	}
	if r.conn, err = chclient.Open(ctx, r.dsn); err != nil {
		return err
	}

	// Confluent framing through a schema registry (franz-go's srfake on
	// loopback): the projector reads it like production, and the peer
	// (ClickHouse's AvroConfluent format) can decode the same topic.
	reg := srfake.New()
	r.regURL = reg.URL()
	go func() { <-ctx.Done(); reg.Close() }()
	srcl, err := sr.NewClient(sr.URLs(r.regURL))
	if err != nil {
		return err
	}
	cat, err := events.Load()
	if err != nil {
		return err
	}
	if _, err := schemas.Register(ctx, srcl, cat, schemas.RegisterOptions{SetCompatibility: true}); err != nil {
		return fmt.Errorf("register schemas: %w", err)
	}
	codec, err := schemas.NewCodec(cat, schemas.WithRegistry(srcl), schemas.WithBindings(events.Bindings()...))
	if err != nil {
		return err
	}

	r.kcl, err = kgo.NewClient(kgo.SeedBrokers(r.cfg.Brokers...))
	if err != nil {
		return err
	}
	adm := kadm.NewClient(r.kcl)
	var topics []string
	for _, t := range cat.Topics() {
		topics = append(topics, r.prefix+t)
	}
	resp, err := adm.CreateTopics(ctx, int32(r.cfg.Partitions), -1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	p, err := producers.Open(codec, kgo.SeedBrokers(r.cfg.Brokers...), kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(100000))
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); p.Close() }()
	r.pd = &producer{p: p, g: newGen(r.cfg.Aggregates, r.cfg.ZipfS, r.cfg.Seed), prefix: r.prefix}
	r.progress("setup: ClickHouse %s, database %s, topics %v (%d partitions), registry %s",
		r.res.Machine.ClickHouse, r.cfg.Database, topics, r.cfg.Partitions, r.regURL)
	return nil
}

func (r *run) startChild(ctx context.Context, gen int, replay bool) error {
	return r.startChildOf(ctx, projections, gen, replay)
}

// startChildOf starts a projector process running projs as generation
// gen and waits until it is ready.
func (r *run) startChildOf(ctx context.Context, projs []string, gen int, replay bool) error {
	c, err := startProjector(ctx, r.cfg.Log, r.cfg.MemoryLimitMB, r.childArgs(r.dsn, r.prefix, projs, gen, replay)...)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.child, r.gen = c, gen
	r.cprojs, r.cphases = projs, nil
	if r.phase != "" {
		r.cphases = []string{r.phase}
	}
	r.lastCPU, r.lastT = procUsage{}, time.Now()
	r.mu.Unlock()
	// Ready: assigned and the tables exist.
	for i := 0; i < 300; i++ {
		if st, err := c.stats(ctx); err == nil && st.Ready {
			var n uint64
			if r.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE ?",
				fmt.Sprintf("%%__g%d", gen)).Scan(&n); n > 0 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.stopChild()
	return fmt.Errorf("projector generation %d not ready after 30s", gen)
}

// childArgs are the projector process's arguments: projs as generation
// gen in the database of dsn on the topics under prefix.
func (r *run) childArgs(dsn, prefix string, projs []string, gen int, replay bool) []string {
	args := []string{"-brokers", strings.Join(r.cfg.Brokers, ","), "-dsn", poolDSN(dsn), "-registry", r.regURL,
		"-projections", strings.Join(projs, ","), "-topic-prefix", prefix, "-gen", fmt.Sprint(gen),
		"-batch", fmt.Sprint(r.cfg.Batch)}
	if replay {
		args = append(args, "-replay")
	}
	return args
}

// childPool is the projector process's ClickHouse connection bound, the
// default of `reel project` (clickhouse.maxOpenConns): clickhouse-go's
// own default of 10 starves 12 partitions × 2 projections of workers.
const childPool = 64

// poolDSN sets the connection pool bound on dsn unless it has one.
func poolDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Query().Has("max_open_conns") {
		return dsn
	}
	q := u.Query()
	q.Set("max_open_conns", fmt.Sprint(childPool))
	q.Set("max_idle_conns", fmt.Sprint(childPool))
	u.RawQuery = q.Encode()
	return u.String()
}

// stopChild stops the projector process and records its peak RSS.
func (r *run) stopChild() {
	r.mu.Lock()
	c, gen := r.child, r.gen
	r.child = nil
	r.mu.Unlock()
	if c == nil {
		return
	}
	if hwm, err := readHWM(c.cmd.Process.Pid); err == nil {
		r.res.Projector.Peaks = append(r.res.Projector.Peaks, ProcessPeak{
			Process: fmt.Sprintf("%s, generation %d", strings.Join(r.cprojs, "+"), gen), Phases: r.cphases,
			PeakMB: float64(hwm) / (1 << 20)})
	}
	c.stop()
}

func (r *run) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	if r.child != nil {
		r.cphases = append(r.cphases, p)
	}
	r.mu.Unlock()
	r.progress("phase: %s", p)
}

// sampler records one Sample per second and prints the progress line.
func (r *run) sampler(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastProduced, lastApplied int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		c, gen, phase := r.child, r.gen, r.phase
		var pids []int
		for _, p := range append([]*projectorProc{c}, r.replicas...) {
			if p != nil {
				pids = append(pids, p.cmd.Process.Pid)
			}
		}
		r.mu.Unlock()
		r.cpu.sample(phase, pids)
		s := Sample{T: time.Since(r.start).Seconds(), Phase: phase, Produced: r.pd.produced.Load(), Generation: gen}
		if c != nil {
			if st, err := c.stats(ctx); err == nil {
				s.Applied = st.Applied
				s.HeapMB = float64(st.HeapAlloc) / (1 << 20)
				s.PendingMB = st.Gauges["reel_projector_pending_bytes"] / (1 << 20)
				s.BufferedMB = st.Gauges["reel_projector_fetch_buffered_bytes"] / (1 << 20)
				r.res.Projector.HeapMaxMB = max(r.res.Projector.HeapMaxMB, s.HeapMB)
				r.peakHeap(ctx, c, s)
				r.res.Projector.HeapSysMaxM = max(r.res.Projector.HeapSysMaxM, float64(st.HeapSys)/(1<<20))
			}
			if u, err := readProc(c.cmd.Process.Pid); err == nil {
				now := time.Now()
				r.mu.Lock()
				if r.lastCPU.CPU > 0 {
					s.CPU = (u.CPU - r.lastCPU.CPU).Seconds() / now.Sub(r.lastT).Seconds()
				}
				r.lastCPU, r.lastT = u, now
				r.mu.Unlock()
				s.RSSMB = float64(u.RSS) / (1 << 20)
				r.res.Projector.RSSMaxMB = max(r.res.Projector.RSSMaxMB, s.RSSMB)
			}
		}
		r.mu.Lock()
		r.res.Timeline = append(r.res.Timeline, s)
		r.res.CPU = r.cpu.result()
		r.mu.Unlock()
		// Lag summed over partitions: what was produced is the end, what the
		// projector applied (Σ applied offset + 1) the next offset to apply.
		r.progress("%-14s produced %9d (%7.0f/s)  applied g%d %9d (%7.0f/s)  lag %8d  cpu %4.2f  rss %5.0f MB",
			phase, s.Produced, float64(s.Produced-lastProduced), gen, s.Applied, float64(s.Applied-lastApplied),
			store.Lag(s.Produced, s.Applied-1, 0), s.CPU, s.RSSMB)
		lastProduced, lastApplied = s.Produced, s.Applied
	}
}

// waitApplied waits until the projector has made n events durable.
func (r *run) waitApplied(ctx context.Context, n int64, limit time.Duration) (time.Duration, error) {
	t0 := time.Now()
	for time.Since(t0) < limit {
		if st, err := r.child.stats(ctx); err == nil && st.Applied >= n {
			return time.Since(t0), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return time.Since(t0), fmt.Errorf("projector did not apply %d events within %s", n, limit)
}

// maxPhase produces as fast as possible (or at -rate) with the projector
// live; the projector's applied rate over the steady window (after 5s of
// warm-up) is the max rate. Then the projector drains the backlog alone.
func (r *run) maxPhase(ctx context.Context) error {
	r.setPhase("max")
	stopProfile := r.startProfile(ctx, "max + drain (projector live, producer flat out, then the backlog)", "max")

	warm := 5 * time.Second
	var a0 int64
	var t0 time.Time
	go func() {
		time.Sleep(warm)
		if st, err := r.child.stats(ctx); err == nil {
			a0, t0 = st.Applied, time.Now()
		}
	}()
	n, d, err := r.pd.run(ctx, r.cfg.Rate, r.cfg.MaxDuration, r.cfg.MaxEvents, nil)
	if err != nil {
		return err
	}
	r.res.Produce = rate(n, d)
	st, err := r.child.stats(ctx)
	if err != nil {
		return err
	}
	if !t0.IsZero() {
		r.res.LiveMax = rate(st.Applied-a0, time.Since(t0))
	}
	backlog := r.pd.produced.Load() - st.Applied
	r.setPhase("drain")
	dd, err := r.waitApplied(ctx, r.pd.produced.Load(), 10*time.Minute)
	if err != nil {
		return err
	}
	r.res.Drain = rate(backlog, dd)
	stopProfile()
	if st, err := r.child.stats(ctx); err == nil {
		r.res.Partitions = partShares(st.Parts)
	}
	r.res.MaxRate = r.res.LiveMax.PerSec
	if r.res.MaxRate <= 0 || r.res.Produce.PerSec < r.res.MaxRate {
		r.res.MaxRate = r.res.Produce.PerSec
	}
	r.progress("max: produced %.0f/s, projector live %.0f/s, drained %d in %s (%.0f/s); max rate %.0f/s",
		r.res.Produce.PerSec, r.res.LiveMax.PerSec, backlog, dd.Round(time.Millisecond), r.res.Drain.PerSec, r.res.MaxRate)
	return nil
}

// freshness runs each load level with the prober.
func (r *run) freshness(ctx context.Context) error {
	pr := &prober{conn: r.conn}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go pr.run(pctx)
	for _, f := range r.cfg.Levels {
		target := f * r.res.MaxRate
		r.setPhase(fmt.Sprintf("fresh %.0f%%", f*100))
		cpu0, _ := readProc(r.child.cmd.Process.Pid)
		work := r.watchWork(ctx)
		n, d, err := r.pd.run(ctx, target, r.cfg.LevelTime, 0, pr)
		if err != nil {
			return err
		}
		if _, err := r.waitApplied(ctx, r.pd.produced.Load(), 5*time.Minute); err != nil {
			return err
		}
		cpu1, _ := readProc(r.child.cmd.Process.Pid)
		time.Sleep(300 * time.Millisecond) // last probe rounds
		lat, qlat, pending := pr.take()
		lv := Level{Fraction: f, TargetRate: target, Produced: rate(n, d), Samples: len(lat), Pending: pending,
			P50: percentile(lat, 0.5), P95: percentile(lat, 0.95), P99: percentile(lat, 0.99), Max: percentile(lat, 1),
			ProbeP50: percentile(qlat, 0.5), CPU: (cpu1.CPU - cpu0.CPU).Seconds() / d.Seconds()}
		if lv.Waits, lv.Server, err = work(); err != nil {
			r.note("waits at %.0f%%: %v", f*100, err)
		}
		r.res.Freshness = append(r.res.Freshness, lv)
		r.progress("freshness at %.0f%% (%.0f/s): p50 %.0f ms, p95 %.0f ms, p99 %.0f ms over %d samples",
			f*100, lv.Produced.PerSec, lv.P50, lv.P95, lv.P99, lv.Samples)
	}
	return nil
}
