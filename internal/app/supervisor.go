package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/internal/httpapi"
	"github.com/reel-dev/reel/internal/retry"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// Supervisor runs a projectors.Runner for every live and standby
// generation of the configured projections and follows the generation
// registry: when a rebuild cuts over or rolls back (flipping statuses in
// _reel_generations) it starts and stops runners by itself within one
// generationPoll.
//
// A runner keeps running when its generation flips between live and
// standby: the views are pointed by whoever flips the status (the rebuild
// job), and a runner only touches views when it starts. A restarted runner
// gets the options of its current status (standby: WithoutViews).
type Supervisor struct {
	cfg   *config.Config
	conn  driver.Conn
	dec   projectors.Decoder
	kopts []kgo.Opt
	reg   prometheus.Registerer
	log   *slog.Logger
	projs []*projection.Projection
	lag   *lagCollector

	mu      sync.Mutex
	gens    map[genKey]*genRun
	metrics map[int]*genMetrics // by generation number
	synced  bool                // the registry was read once for every projection
	lastErr error               // the last reconcile error, for /readyz
}

type genKey struct {
	proj string
	gen  int
}

// genRun is one generation under supervision.
type genRun struct {
	p       *projection.Projection
	gen     int
	status  string
	metrics *projectors.Metrics // shared with the generation's other projections (genMetrics)

	runner   *projectors.Runner // nil while stopped
	cancel   context.CancelFunc
	done     chan struct{}
	err      error // why the last run ended
	failures int
	// foreign: a standby generation whose stored definition this code
	// cannot run (it was replaced by a rebuild after a destructive
	// change); it is left as it is, for a rollback of the code.
	foreign   bool
	nextStart time.Time
}

// NewSupervisor prepares a supervisor for the configured projections
// (config.SelectProjections: Go and declared). Metrics are registered on
// reg: the runtime's per generation (label generation), kprom's per client
// (namespace reel_kafka, labels projection and generation) and the lag
// collector's.
func NewSupervisor(cfg *config.Config, conn driver.Conn, dec projectors.Decoder, kopts []kgo.Opt, reg prometheus.Registerer, log *slog.Logger) (*Supervisor, error) {
	cat, err := cfg.LoadCatalog()
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	projs, err := cfg.SelectProjections(cat)
	if err != nil {
		return nil, err
	}
	s := &Supervisor{cfg: cfg, conn: conn, dec: dec, kopts: kopts, reg: reg, log: log, projs: projs, gens: map[genKey]*genRun{}, metrics: map[int]*genMetrics{}}
	s.lag = newLagCollector()
	if reg != nil {
		if err := reg.Register(s.lag); err != nil {
			return nil, fmt.Errorf("register lag collector: %w", err)
		}
	}
	return s, nil
}

// RunnerOptions is where a configuration becomes a runner's options: the
// brokers, the generation, every runner setting of the projector section
// (projectors.WithTuning: its YAML keys are the runtime's), the logger,
// the metrics and the Kafka client options (KafkaOpts). Every entry point
// that runs projections builds its runners' options here — the
// Supervisor (`reel project`, `reel dev`), the load test's projector and
// the tests' projector processes — and adds only what its role needs
// (EffectsByGeneration, WithoutViews, Replay).
func RunnerOptions(cfg *config.Config, gen int, kopts []kgo.Opt, log *slog.Logger, m *projectors.Metrics) []projectors.Opt {
	return []projectors.Opt{
		projectors.Brokers(cfg.Kafka.Brokers...),
		projectors.Generation(gen),
		projectors.WithTuning(cfg.Projector.Tuning),
		projectors.Logger(log),
		projectors.WithMetrics(m),
		projectors.KafkaOpts(kopts...),
	}
}

// Run supervises until ctx ends, then stops every runner gracefully (each
// flushes its in-flight batches) and returns.
func (s *Supervisor) Run(ctx context.Context) error {
	adm, err := newLagSource(s.kopts)
	if err != nil {
		return err
	}
	defer adm.close()
	defer s.stopAll()
	poll := s.cfg.Projector.GenerationPoll
	for {
		s.reconcile(ctx)
		s.lag.refresh(ctx, s, adm)
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// reconcile makes the running runners match the registry.
func (s *Supervisor) reconcile(ctx context.Context) {
	var errs []error
	for _, p := range s.projs {
		// LiveGeneration registers generation 1 on a projection's first run.
		if _, err := store.LiveGeneration(ctx, s.conn, p); err != nil && ctx.Err() == nil {
			// "generations but none live" is a valid state during a
			// rebuild's rollback; standby ones still run.
			s.log.Warn("no live generation", "projection", p.Name, "err", err)
		}
		gens, err := store.Generations(ctx, s.conn, p.Name)
		if err != nil {
			if ctx.Err() == nil {
				errs = append(errs, err)
				s.log.Warn("cannot read the generation registry; keeping runners as they are", "projection", p.Name, "err", err)
			}
			continue
		}
		want := map[int]string{}
		for _, g := range gens {
			if g.Status == store.StatusLive || g.Status == store.StatusStandby {
				want[g.Generation] = g.Status
			}
		}
		s.mu.Lock()
		var stop []*genRun
		for k, gr := range s.gens {
			if k.proj != p.Name {
				continue
			}
			if _, ok := want[k.gen]; !ok {
				stop = append(stop, gr)
				delete(s.gens, k)
			}
		}
		s.mu.Unlock()
		for _, gr := range stop {
			s.log.Info("generation left live/standby; stopping its runner", "projection", p.Name, "generation", gr.gen)
			s.stop(gr)
			s.releaseMetrics(gr)
		}
		for g, status := range want {
			if ctx.Err() != nil {
				return
			}
			s.ensure(ctx, p, g, status)
		}
	}
	s.mu.Lock()
	s.synced = len(errs) == 0 || s.synced
	s.lastErr = errors.Join(errs...)
	s.mu.Unlock()
}

// ensure starts (or restarts after a failure, with backoff) the runner of
// one generation.
func (s *Supervisor) ensure(ctx context.Context, p *projection.Projection, gen int, status string) {
	k := genKey{p.Name, gen}
	s.mu.Lock()
	gr := s.gens[k]
	if gr == nil {
		gr = &genRun{p: p, gen: gen, metrics: s.acquireMetrics(gen)}
		s.gens[k] = gr
	}
	if gr.status != status && gr.status != "" {
		s.log.Info("generation status changed", "projection", p.Name, "generation", gen, "from", gr.status, "to", status)
	}
	gr.status = status
	running := gr.runner != nil
	if running {
		select {
		case <-gr.done:
			running = false
			gr.runner = nil
		default:
		}
	}
	if running || time.Now().Before(gr.nextStart) {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()

	if status == store.StatusStandby {
		m, err := store.PlanMigration(ctx, s.conn, store.NewLayout(p, gen), false)
		if err == nil {
			err = m.Err()
		}
		s.mu.Lock()
		was := gr.foreign
		gr.foreign = errors.Is(err, store.ErrDefinitionChanged)
		if gr.foreign {
			gr.err, gr.nextStart = err, time.Now().Add(s.cfg.Projector.RetryMax)
		}
		s.mu.Unlock()
		if gr.foreign {
			if !was {
				s.log.Warn("standby generation has another definition; not running it", "projection", p.Name, "generation", gen, "err", err)
			}
			return
		}
	}

	opts := append(RunnerOptions(s.cfg, gen, s.kopts, s.log, gr.metrics),
		// A standby generation runs no side effects; the live one runs
		// them up to where a cut-over handed them over (projectors/store/effects.go).
		projectors.EffectsByGeneration())
	if s.reg != nil {
		// One kprom value per client: kprom registers its collectors when
		// the client starts and unregisters them when it closes.
		kreg := prometheus.WrapRegistererWith(prometheus.Labels{"projection": p.Name, "generation": strconv.Itoa(gen)}, s.reg)
		opts = append(opts, projectors.KafkaHooks(kprom.NewMetrics("reel_kafka", kprom.Registerer(kreg))))
	}
	if status != store.StatusLive {
		opts = append(opts, projectors.WithoutViews())
	}
	r, err := projectors.NewRunner(p, s.conn, s.dec, opts...)
	if err != nil {
		s.log.Error("cannot create runner", "projection", p.Name, "generation", gen, "err", err)
		s.mu.Lock()
		gr.err, gr.nextStart = err, time.Now().Add(s.cfg.Projector.RetryMax)
		s.mu.Unlock()
		return
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	s.mu.Lock()
	gr.runner, gr.cancel, gr.done = r, cancel, done
	s.mu.Unlock()
	s.log.Info("starting runner", "projection", p.Name, "generation", gen, "status", status)
	go func() {
		defer close(done)
		err := r.Run(rctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		gr.err = err
		if err != nil && rctx.Err() == nil {
			gr.failures++
			pol := retry.New(s.cfg.Projector.RetryMin, s.cfg.Projector.RetryMax, nil)
			backoff := pol.Delay(gr.failures)
			if chclient.Classify(err) == chclient.Permanent {
				// Restarting soon cannot cure it (rights, schema): try again
				// at the slowest pace; /readyz shows the error meanwhile.
				backoff = s.cfg.Projector.RetryMax
			}
			gr.nextStart = time.Now().Add(backoff)
			s.log.Error("runner stopped; restarting after backoff", "projection", p.Name, "generation", gen, "err", err, "backoff", backoff)
			return
		}
		gr.failures = 0
	}()
}

func (s *Supervisor) stop(gr *genRun) {
	s.mu.Lock()
	cancel, done := gr.cancel, gr.done
	gr.runner = nil
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// stopAll stops every runner in parallel; each flushes its batches.
func (s *Supervisor) stopAll() {
	s.mu.Lock()
	var all []*genRun
	for _, gr := range s.gens {
		all = append(all, gr)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, gr := range all {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(gr) }()
	}
	wg.Wait()
	s.log.Info("all runners stopped")
}

// Ready reports nil when the registry has been read, every live/standby
// generation has a running runner whose Ready is nil, and ClickHouse
// answers a ping.
func (s *Supervisor) Ready(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("ClickHouse unreachable: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.synced {
		if s.lastErr != nil {
			return s.lastErr
		}
		return errors.New("generation registry not read yet")
	}
	var errs []error
	for _, k := range s.sortedKeys() {
		gr := s.gens[k]
		if gr.foreign && gr.status == store.StatusStandby {
			continue
		}
		if gr.runner == nil {
			errs = append(errs, fmt.Errorf("%s g%d: not running (last error: %v)", k.proj, k.gen, gr.err))
			continue
		}
		if err := gr.runner.Ready(); err != nil {
			errs = append(errs, fmt.Errorf("%s g%d: %w", k.proj, k.gen, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Supervisor) sortedKeys() []genKey {
	keys := make([]genKey, 0, len(s.gens))
	for k := range s.gens {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].proj != keys[j].proj {
			return keys[i].proj < keys[j].proj
		}
		return keys[i].gen < keys[j].gen
	})
	return keys
}

// running returns the runners in a stable order, for the lag collector.
func (s *Supervisor) running() []*genRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*genRun
	for _, k := range s.sortedKeys() {
		out = append(out, s.gens[k])
	}
	return out
}

// runnerFor finds the runner of a projection's generation (0: the live one).
func (s *Supervisor) runnerFor(projection string, gen int) (*projectors.Runner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, gr := range s.gens {
		if k.proj != projection || (gen != 0 && k.gen != gen) || (gen == 0 && gr.status != store.StatusLive) {
			continue
		}
		if gr.runner == nil {
			return nil, httpapi.Errorf(http.StatusServiceUnavailable, "%s g%d is not running right now (last error: %v)", projection, k.gen, gr.err)
		}
		return gr.runner, nil
	}
	if gen == 0 {
		return nil, httpapi.Errorf(http.StatusNotFound, "this process runs no live generation of projection %q", projection)
	}
	return nil, httpapi.Errorf(http.StatusNotFound, "this process does not run generation %d of projection %q", gen, projection)
}

// ReplayParked re-applies an aggregate's parked events in the runner that
// owns its partition (httpapi.Admin).
func (s *Supervisor) ReplayParked(ctx context.Context, projection string, gen int, aggregate string) (any, error) {
	r, err := s.runnerFor(projection, gen)
	if err != nil {
		return nil, err
	}
	res, err := r.ReplayParked(ctx, aggregate)
	return res, classify(err)
}

// DiscardParked drops an aggregate's parked events and unparks it in the
// running worker (httpapi.Admin).
func (s *Supervisor) DiscardParked(ctx context.Context, projection string, gen int, aggregate string) (any, error) {
	r, err := s.runnerFor(projection, gen)
	if err != nil {
		return nil, err
	}
	res, err := r.DiscardParked(ctx, aggregate)
	return res, classify(err)
}

func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, projectors.ErrNotParked):
		return &httpapi.Error{Status: http.StatusNotFound, Err: err}
	case errors.Is(err, projectors.ErrNotOwner):
		// Another replica owns the partition: the caller retries there.
		return &httpapi.Error{Status: http.StatusConflict, Err: err}
	}
	return err
}

// recordingRegisterer remembers what it registered so that a generation's
// runtime metrics can be removed when the generation is retired.
type recordingRegisterer struct {
	inner prometheus.Registerer
	mu    sync.Mutex
	cs    []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.inner.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.cs = append(r.cs, c)
	r.mu.Unlock()
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recordingRegisterer) Unregister(c prometheus.Collector) bool { return r.inner.Unregister(c) }

// genMetrics are the runtime metrics of one generation number. Every
// projection at that generation shares them: their series carry the
// projection label, and a registry refuses a second collector of the
// same name and constant labels (which, unshared, panicked in
// NewMetrics for the second projection of a generation, under s.mu).
type genMetrics struct {
	m    *projectors.Metrics
	regd *recordingRegisterer
	refs int
}

// acquireMetrics returns generation gen's metrics, registering them on
// first use. s.mu is held.
func (s *Supervisor) acquireMetrics(gen int) *projectors.Metrics {
	gm := s.metrics[gen]
	if gm == nil {
		gm = &genMetrics{}
		if s.reg == nil {
			gm.m = projectors.NewMetrics(nil)
		} else {
			gm.regd = &recordingRegisterer{inner: prometheus.WrapRegistererWith(prometheus.Labels{"generation": strconv.Itoa(gen)}, s.reg)}
			gm.m = projectors.NewMetrics(gm.regd)
		}
		s.metrics[gen] = gm
	}
	gm.refs++
	return gm.m
}

// releaseMetrics drops gr's series from its generation's metrics, and
// unregisters them once no projection of the generation runs.
func (s *Supervisor) releaseMetrics(gr *genRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gm := s.metrics[gr.gen]
	if gm == nil {
		return
	}
	gm.m.Forget(gr.p.Name)
	if gm.refs--; gm.refs > 0 {
		return
	}
	delete(s.metrics, gr.gen)
	if gm.regd == nil {
		return
	}
	gm.regd.mu.Lock()
	defer gm.regd.mu.Unlock()
	for _, c := range gm.regd.cs {
		gm.regd.inner.Unregister(c)
	}
	gm.regd.cs = nil
}
