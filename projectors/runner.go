package projectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/schemas"
)

// Decoder turns a Kafka record into an event. *schemas.Codec implements it.
type Decoder interface {
	Decode(ctx context.Context, r *kgo.Record) (schemas.Event, error)
}

// Runner runs one generation of one projection as a member of its consumer
// group: partitions are processed in parallel, each in order, by a worker
// that owns the partition's batch and positions.
type Runner struct {
	proj    *Projection
	layout  *Layout
	conn    driver.Conn
	dec     Decoder
	cfg     cfg
	log     *slog.Logger
	metrics *Metrics
	cl      *kgo.Client

	mu      sync.Mutex
	workers map[tp]*worker
	ctx     context.Context // worker context; cancel = abandon
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	healthMu  sync.Mutex
	healthErr error
	assigned  bool

	progMu   sync.Mutex
	progress map[tp]int64          // highest applied offset per partition
	waiters  map[tp][]progressWait // read-your-writes waiters
}

type progressWait struct {
	off int64
	ch  chan struct{}
}

// NewRunner prepares a runner. Call Run to start consuming.
func NewRunner(p *Projection, conn driver.Conn, dec Decoder, opts ...Opt) (*Runner, error) {
	c := defaultCfg()
	for _, o := range opts {
		o(&c)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if conn == nil || dec == nil {
		return nil, errors.New("projectors: NewRunner needs a ClickHouse connection and a decoder")
	}
	r := &Runner{
		proj: p, layout: NewLayout(p, c.generation), conn: conn, dec: dec, cfg: c,
		log:      c.logger.With("projection", p.Name, "generation", c.generation),
		metrics:  c.metrics,
		workers:  map[tp]*worker{},
		progress: map[tp]int64{},
		waiters:  map[tp][]progressWait{},
	}
	if r.metrics == nil {
		r.metrics = NewMetrics(nil)
	}
	return r, nil
}

// Layout is the generation's physical layout.
func (r *Runner) Layout() *Layout { return r.layout }

// Run creates the generation's tables (and, unless WithoutViews, points the
// views at it), joins the consumer group and projects until ctx ends. On
// return every partition's in-flight batch has been flushed or abandoned.
func (r *Runner) Run(ctx context.Context) error {
	if err := EnsureSchema(ctx, r.conn, r.layout); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	if r.cfg.views {
		if err := CreateViews(ctx, r.conn, r.layout); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	defer r.cancel()

	opts := append([]kgo.Opt{
		kgo.SeedBrokers(r.cfg.brokers...),
		kgo.ConsumerGroup(Group(r.proj.Name, r.cfg.generation)),
		kgo.ConsumeTopics(r.proj.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		// Workers mark a partition's offset after its batch is durable;
		// franz-go commits the marks (one committer, no racing commits).
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.RebalanceTimeout(r.cfg.shutdownTimeout + 10*time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.AdjustFetchOffsetsFn(r.onAssigned),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { r.stopWorkers(m, true) }),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { r.stopWorkers(m, false) }),
		kgo.WithLogger(kgoLogger{r.log}),
	}, r.cfg.kgoOpts...)
	if r.cfg.hooks != nil {
		opts = append(opts, kgo.WithHooks(r.cfg.hooks...))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client for %s: %w", r.proj.Name, err)
	}
	r.cl = cl
	defer func() {
		r.stopAll(true)
		// The last poll may have blocked rebalancing; leaving needs it.
		cl.AllowRebalance()
		// Leave promptly so the partitions move on without waiting for the
		// session timeout; Close would wait for a rebalance in progress.
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = cl.LeaveGroupContext(lctx)
		cancel()
		cl.Close()
	}()
	r.log.Info("projector started", "group", Group(r.proj.Name, r.cfg.generation), "topics", r.proj.Topics)

	for {
		fetches := cl.PollRecords(ctx, r.cfg.maxPollRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			r.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) == 0 {
				return
			}
			r.mu.Lock()
			w := r.workers[tp{ftp.Topic, ftp.Partition}]
			r.mu.Unlock()
			if w == nil {
				return // revoked meanwhile; the next owner resumes from ClickHouse
			}
			w.enqueue(ftp.Records)
		})
		// Rebalances wait while records are handed to workers
		// (BlockRebalanceOnPoll), so records fetched for an assignment can
		// never reach the worker of a later one. Handing over never blocks.
		cl.AllowRebalance()
	}
}

// onAssigned is kgo's AdjustFetchOffsetsFn: it replaces the group's
// committed offsets (a hint) by the positions ClickHouse holds and starts a
// worker per new partition. It retries until ClickHouse answers or the
// session is revoked.
func (r *Runner) onAssigned(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	var pos map[tp][]int64
	var parked map[tp]map[string]int64
	for attempt := 0; ; attempt++ {
		var err error
		pos, err = readPositions(ctx, r.conn, r.layout)
		if err == nil {
			parked, err = readParked(ctx, r.conn, r.layout)
		}
		if err == nil {
			break
		}
		r.setHealthy(false, err)
		r.log.Warn("cannot read positions from ClickHouse; retrying", "attempt", attempt+1, "err", err)
		d := min(r.cfg.retryMin<<min(attempt, 16), r.cfg.retryMax)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d):
		}
	}
	r.setHealthy(true, nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, parts := range offsets {
		for p := range parts {
			k := tp{topic, p}
			ck, ok := pos[k]
			if !ok {
				ck = make([]int64, len(r.layout.tables))
				for i := range ck {
					ck[i] = -1
				}
			}
			w := newWorker(r, k, ck, parked[k])
			start := w.startOffset()
			if start == 0 {
				parts[p] = r.cfg.startOffset(topic, p)
			} else {
				parts[p] = kgo.NewOffset().At(start).WithEpoch(-1)
			}
			// A partition paused by an earlier worker stays paused across a
			// revocation: the new worker starts unpaused.
			r.cl.ResumeFetchPartitions(map[string][]int32{topic: {p}})
			if old := r.workers[k]; old != nil {
				close(old.stop)
				<-old.done
			}
			r.workers[k] = w
			r.wg.Add(1)
			go func() { defer r.wg.Done(); w.run() }()
			r.log.Info("partition assigned", "topic", topic, "partition", p, "resume_offset", start, "parked_aggregates", len(w.parkedFrom))
		}
	}
	r.assigned = true
	return offsets, nil
}

// stopWorkers stops the workers of revoked (graceful: flush) or lost
// (abandon) partitions and waits for them.
func (r *Runner) stopWorkers(m map[string][]int32, graceful bool) {
	r.mu.Lock()
	var ws []*worker
	for topic, parts := range m {
		for _, p := range parts {
			k := tp{topic, p}
			if w := r.workers[k]; w != nil {
				ws = append(ws, w)
				delete(r.workers, k)
			}
		}
	}
	r.mu.Unlock()
	r.stop(ws, graceful)
}

func (r *Runner) stopAll(graceful bool) {
	r.mu.Lock()
	var ws []*worker
	for k, w := range r.workers {
		ws = append(ws, w)
		delete(r.workers, k)
	}
	r.mu.Unlock()
	r.stop(ws, graceful)
}

func (r *Runner) stop(ws []*worker, graceful bool) {
	for _, w := range ws {
		if graceful {
			close(w.stop)
		} else {
			// Lost partitions may already belong to another member: abandon
			// the in-flight batch; ClickHouse positions make that safe.
			w.abandon()
		}
	}
	timer := time.NewTimer(r.cfg.shutdownTimeout)
	defer timer.Stop()
	for _, w := range ws {
		select {
		case <-w.done:
		case <-timer.C:
			r.log.Warn("worker did not finish in time; abandoning its batch", "topic", w.k.topic, "partition", w.k.partition)
			w.abandon()
			<-w.done
		}
	}
}

// commit marks the batch's end for the group's autocommit (a hint for
// tools and lag; positions in ClickHouse are the truth).
func (r *Runner) commit(k tp, last int64) {
	r.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{k.topic: {k.partition: {Epoch: -1, Offset: last + 1}}})
}

func (r *Runner) setHealthy(ok bool, err error) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if ok {
		r.healthErr = nil
	} else {
		r.healthErr = err
	}
}

// Ready reports nil when the runner is assigned and ClickHouse accepts its
// inserts; otherwise the reason.
func (r *Runner) Ready() error {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if r.healthErr != nil {
		return r.healthErr
	}
	return nil
}

// applied records that offsets up to last are durable in ClickHouse and
// wakes read-your-writes waiters.
func (r *Runner) applied(k tp, last int64) {
	r.progMu.Lock()
	defer r.progMu.Unlock()
	r.progress[k] = max(r.progress[k], last)
	ws := r.waiters[k]
	kept := ws[:0]
	for _, w := range ws {
		if w.off <= last {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	r.waiters[k] = kept
}

// WaitFor blocks until this runner has made the event at pos durable in
// ClickHouse (read-your-writes), or ctx ends. Only partitions this runner
// owns advance; use WaitApplied in ClickHouse for a group-wide answer.
func (r *Runner) WaitFor(ctx context.Context, topic string, partition int32, offset int64) error {
	k := tp{topic, partition}
	r.progMu.Lock()
	if r.progress[k] >= offset && (r.progress[k] != 0 || offset == 0) {
		if _, ok := r.progress[k]; ok {
			r.progMu.Unlock()
			return nil
		}
	}
	ch := make(chan struct{})
	r.waiters[k] = append(r.waiters[k], progressWait{off: offset, ch: ch})
	r.progMu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
