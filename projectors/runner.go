package projectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/retry"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
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
	proj    *projection.Projection
	layout  *store.Layout
	conn    driver.Conn
	dec     Decoder
	cfg     cfg
	log     *slog.Logger
	metrics *Metrics
	retry   retry.Policy
	cl      *kgo.Client
	// clSet is closed once cl is set: a fast group join can call
	// onAssigned from inside kgo.NewClient's goroutines before it returns.
	clSet chan struct{}

	mu      sync.Mutex
	workers map[tp]*worker
	// cacheShare and batchShare are each worker's shares of
	// StateCacheBytes and BatchBytes: the bounds of its state cache and
	// of its batches; waiting holds its share of MaxPendingBytes
	// (shareMemory sets them as partitions come and go).
	cacheShare atomic.Int64
	batchShare atomic.Int64
	waiting    *waiting
	ctx        context.Context // worker context; cancel = abandon
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	group grouper // group commit of the workers' batches (group.go)

	healthMu  sync.Mutex
	healthErr error
	refused   map[tp]error            // partitions the runner will not project, and why
	fence     context.CancelCauseFunc // ends the membership (ErrFenced)
}

// NewRunner prepares a runner. Call Run to start consuming.
func NewRunner(p *projection.Projection, conn driver.Conn, dec Decoder, opts ...Opt) (*Runner, error) {
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
		proj: p, layout: store.NewLayout(p, c.generation), conn: conn, dec: dec, cfg: c,
		log:     c.logger.With("projection", p.Name, "generation", c.generation),
		metrics: c.metrics,
		workers: map[tp]*worker{},
	}
	if r.metrics == nil {
		r.metrics = NewMetrics(nil)
	}
	r.group.r = r
	r.cacheShare.Store(c.StateCacheBytes)
	r.batchShare.Store(c.BatchBytes)
	r.waiting = newWaiting(c.MaxPendingBytes)
	r.retry = retry.New(c.RetryMin, c.RetryMax, r.metrics.clickhouse)
	return r, nil
}

// Layout is the generation's physical layout.
func (r *Runner) Layout() *store.Layout { return r.layout }

// Run creates the generation's tables (and, unless WithoutViews, points the
// views at it), joins the consumer group and projects until ctx ends. On
// return every partition's in-flight batch has been flushed or abandoned.
func (r *Runner) Run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := r.prepare(ctx)
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		var de *store.DefinitionError
		if err == nil {
			break
		} else if errors.As(err, &de) || errors.Is(err, chclient.ErrUnsafeSettings) {
			r.setHealthy(false, err)
			return err // refused by the stored definition or the server's settings: retrying changes nothing
		}
		retry, err := r.retry.Observe("prepare", err)
		if !retry {
			r.setHealthy(false, err)
			return err // the server refused the DDL
		}
		// Not reached, timed out, no free connection: try again.
		r.setHealthy(false, err)
		r.log.Warn("cannot prepare the generation's tables; retrying", "attempt", attempt+1, "err", err)
		if r.retry.Sleep(ctx, attempt) != nil {
			return nil
		}
	}
	for attempt := 0; ; attempt++ {
		err := r.consume(ctx)
		rejoin, ret := afterConsume(err, ctx.Err() != nil)
		if !rejoin {
			return ret
		}
		// Another member claimed one of our partitions after us: we were
		// stale, or a stale member claimed late. Rejoin as a new member;
		// the group hands the partitions out again and their owners claim
		// them anew.
		r.log.Warn("fenced: rejoining the consumer group", "err", err)
		if r.retry.Sleep(ctx, attempt) != nil {
			return nil
		}
	}
}

// prepare brings the generation's tables to the code's definition by an
// additive migration, or refuses (a *store.DefinitionError naming the change and
// `reel rebuild`), and points the views at the generation while the
// registry names it live (or names none of it: a runner restarted just
// after a cut-over or rollback must not take the views back).
func (r *Runner) prepare(ctx context.Context) error {
	m, err := store.Evolve(ctx, r.conn, r.layout, r.cfg.views)
	if err != nil {
		return err
	}
	if len(m.Changes) > 0 {
		r.log.Info("migrated the generation to the projection's definition", "changes", fmt.Sprint(m.Changes), "backfill", m.Backfill, "statements", len(m.Statements))
	}
	if r.cfg.Durable {
		if err := store.MakeDurable(ctx, r.conn, r.layout); err != nil {
			return err
		}
	}
	if err := store.CheckSettings(ctx, r.conn, r.layout, r.cfg.Durable, r.log); err != nil {
		return err
	}
	if !r.cfg.views {
		return nil
	}
	status, err := store.GenerationStatusOf(ctx, r.conn, r.proj.Name, r.cfg.generation)
	if err != nil {
		return err
	}
	if status != "" && status != store.StatusLive {
		r.log.Warn("not pointing the views at this generation: the registry says it is not live", "status", status)
		return nil
	}
	return store.CreateViews(ctx, r.conn, r.layout)
}

// afterConsume says what Run does once consume returned err: rejoin the
// group after a fence while running; return otherwise. A member fenced
// while it stops (a freeze during a graceful shutdown) stops cleanly:
// another member holds the partition, and the guard dropped whatever
// this one still sent (the freeze test saw such a process exit 1).
func afterConsume(err error, stopping bool) (rejoin bool, _ error) {
	if errors.Is(err, ErrFenced) {
		return !stopping, nil
	}
	return false, err
}

// consume is one membership in the consumer group: it polls until ctx ends
// (nil) or a worker finds its partition claimed by another member
// (ErrFenced).
func (r *Runner) consume(ctx context.Context) error {
	r.ctx, r.cancel = context.WithCancel(context.Background())
	defer r.cancel()
	pctx, fence := context.WithCancelCause(ctx)
	defer fence(nil)
	r.fence = fence
	clSet := make(chan struct{})
	r.clSet = clSet

	opts := append([]kgo.Opt{
		kgo.SeedBrokers(r.cfg.brokers...),
		kgo.ConsumerGroup(store.Group(r.proj.Name, r.cfg.generation)),
		kgo.ConsumeTopics(r.proj.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		// Workers mark a partition's offset after its batch is durable;
		// franz-go commits the marks (one committer, no racing commits).
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.RebalanceTimeout(r.cfg.ShutdownTimeout + 10*time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(int32(r.cfg.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(r.cfg.FetchMaxPartitionBytes)),
		kgo.FetchMinBytes(int32(r.cfg.FetchMinBytes)),
		kgo.FetchMaxWait(r.cfg.FetchMaxWait),
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
	close(clSet)
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
	r.log.Info("projector started", "group", store.Group(r.proj.Name, r.cfg.generation), "topics", r.proj.Topics)

	buffered := r.metrics.buffered.WithLabelValues(r.proj.Name)
	for {
		fetches := cl.PollRecords(pctx, r.cfg.maxPollRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		buffered.Set(float64(cl.BufferedFetchBytes()))
		if pctx.Err() != nil {
			cl.AllowRebalance()
			return context.Cause(pctx)
		}
		fetches.EachError(func(t string, p int32, err error) {
			r.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		fetches.EachTopic(func(ft kgo.FetchTopic) {
			id := topicIDString(ft.TopicID)
			for _, fp := range ft.Partitions {
				if len(fp.Records) == 0 {
					continue
				}
				k := tp{Topic: ft.Topic, Partition: fp.Partition}
				r.mu.Lock()
				w := r.workers[k]
				r.mu.Unlock()
				if w == nil {
					continue // revoked meanwhile; the next owner resumes from ClickHouse
				}
				if id != "" && w.claim.topicID != "" && id != w.claim.topicID {
					// Records of another incarnation of the topic than the
					// one this worker claimed: never apply them.
					r.refuse(k, recreatedError(r.layout, ft.Topic, w.claim.topicID, id))
					continue
				}
				w.q.push(fp.Records)
			}
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
	var ks []tp
	var topics []string
	for topic, parts := range offsets {
		topics = append(topics, topic)
		for p := range parts {
			ks = append(ks, tp{Topic: topic, Partition: p})
		}
	}
	if len(ks) == 0 {
		return offsets, nil
	}
	select {
	case <-r.clSet:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	member, kgen := r.cl.GroupMetadata()
	var (
		claims map[tp]claim
		seen   map[string][]string
		pos    map[tp][]int64
		parked map[tp]map[string]int64
	)
	for attempt := 0; ; attempt++ {
		// Claim first: once the claim is recorded and earlier owners'
		// inserts are drained, nothing stale can land, so the positions
		// read next are final.
		ids, err := r.topicIDs(ctx, topics)
		if err == nil {
			claims, seen, err = claimPartitions(ctx, r.conn, r.layout, r.log, ks, ids, member, kgen)
		}
		if err == nil {
			pos, err = store.ReadPositions(ctx, r.conn, r.layout)
		}
		if err == nil {
			parked, err = store.ReadParked(ctx, r.conn, r.layout)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		retry, err := r.retry.Observe("claim", err)
		if !retry {
			// Retrying cannot cure it (rights, missing tables): hold the
			// partitions paused and unconsumed, named in Ready, until the
			// next assignment — like a refused topic. Returning the error
			// would make kgo rejoin at once, rebalancing the whole group
			// in a loop.
			err = fmt.Errorf("claim partitions or read positions: %w", err)
			r.log.Error("cannot claim partitions; not retrying", "err", err)
			r.metrics.stopped.WithLabelValues(r.proj.Name).Add(float64(len(ks)))
			r.cl.PauseFetchPartitions(tpMap(ks))
			r.mu.Lock()
			for _, k := range ks {
				if old := r.workers[k]; old != nil {
					close(old.stop)
					<-old.done
					delete(r.workers, k)
				}
				r.refuse(k, err)
			}
			r.shareMemory()
			r.mu.Unlock()
			return offsets, nil
		}
		r.setHealthy(false, err)
		r.log.Warn("cannot claim partitions or read positions from ClickHouse; retrying", "attempt", attempt+1, "err", err)
		if r.retry.Sleep(ctx, attempt) != nil {
			return nil, ctx.Err()
		}
	}
	r.setHealthy(true, nil)
	r.metrics.claims.WithLabelValues(r.proj.Name).Add(float64(len(claims)))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range ks {
		c := claims[k]
		ck, held := pos[k]
		if !held {
			ck = make([]int64, len(r.layout.Tables))
			for i := range ck {
				ck[i] = -1
			}
		}
		if old := r.workers[k]; old != nil {
			close(old.stop)
			<-old.done
			delete(r.workers, k)
		}
		if held && c.topicID != "" {
			if i := slices.IndexFunc(seen[k.Topic], func(id string) bool { return id != c.topicID }); i >= 0 {
				// The generation holds rows of an earlier incarnation, whose
				// offsets the new one reuses: projecting it here would mix
				// them. Fetching stays paused; a rebuild projects the new
				// topic into a new generation.
				r.refuse(k, recreatedError(r.layout, k.Topic, seen[k.Topic][i], c.topicID))
				r.cl.PauseFetchPartitions(map[string][]int32{k.Topic: {k.Partition}})
				continue
			}
		}
		r.unrefuse(k)
		w := newWorker(r, c, ck, parked[k])
		start := w.startOffset()
		if start == 0 {
			offsets[k.Topic][k.Partition] = r.cfg.startOffset(k.Topic, k.Partition)
		} else {
			offsets[k.Topic][k.Partition] = kgo.NewOffset().At(start).WithEpoch(-1)
		}
		// A partition paused by an earlier worker stays paused across a
		// revocation: the new worker starts unpaused.
		r.cl.ResumeFetchPartitions(map[string][]int32{k.Topic: {k.Partition}})
		r.workers[k] = w
		r.wg.Add(1)
		go func() { defer r.wg.Done(); w.run() }()
		r.log.Info("partition assigned", "topic", k.Topic, "partition", k.Partition, "resume_offset", start,
			"parked_aggregates", len(w.a.parkedFrom), "epoch", c.epoch, "kafka_generation", kgen)
	}
	r.shareMemory()
	return offsets, nil
}

// topicIDs returns the current ID of each topic (hex; "" when the broker
// does not report one).
func (r *Runner) topicIDs(ctx context.Context, topics []string) (map[string]string, error) {
	md, err := kadm.NewClient(r.cl).Metadata(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("topic metadata: %w", err)
	}
	out := map[string]string{}
	for _, t := range md.Topics {
		out[t.Topic] = topicIDString(t.ID)
	}
	return out, nil
}

func recreatedError(l *store.Layout, topic, was, now string) error {
	return fmt.Errorf("%w: topic %q was deleted and created again (topic ID %s, now %s) after generation %d of projection %q projected it; "+
		"its tables hold the old topic's events, whose offsets the new topic reuses. Project the new topic into a new generation: reel rebuild %s",
		ErrTopicRecreated, topic, was, now, l.Generation, l.Projection.Name, l.Projection.Name)
}

// fenced stops the membership: k was claimed by another member after us.
func (r *Runner) fenced(k tp, mine, theirs uint64) {
	r.metrics.fenced.WithLabelValues(r.proj.Name).Inc()
	err := fmt.Errorf("%w: %s/%d now has epoch %d, this member's claim was %d", ErrFenced, k.Topic, k.Partition, theirs, mine)
	r.log.Error("partition claimed by another member; this member stops writing it", "topic", k.Topic, "partition", k.Partition, "epoch", mine, "claimed_by_epoch", theirs)
	if r.fence != nil {
		r.fence(err)
	}
}

// refuse records a partition the runner will not project, reported by Ready.
func (r *Runner) refuse(k tp, err error) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if r.refused == nil {
		r.refused = map[tp]error{}
	}
	if r.refused[k] == nil {
		r.log.Error("partition not projected", "topic", k.Topic, "partition", k.Partition, "err", err)
	}
	r.refused[k] = err
}

// stopPartition stops consuming k after a permanent error: fetching is
// paused and Ready names the partition and the error until k is assigned
// again (a restart, after the cause is fixed).
func (r *Runner) stopPartition(k tp, err error) {
	r.metrics.stopped.WithLabelValues(r.proj.Name).Inc()
	r.refuse(k, fmt.Errorf("partition %s/%d stopped: %w", k.Topic, k.Partition, err))
	r.cl.PauseFetchPartitions(map[string][]int32{k.Topic: {k.Partition}})
}

func tpMap(ks []tp) map[string][]int32 {
	m := map[string][]int32{}
	for _, k := range ks {
		m[k.Topic] = append(m[k.Topic], k.Partition)
	}
	return m
}

func (r *Runner) unrefuse(k tp) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	delete(r.refused, k)
}

// stopWorkers stops the workers of revoked (graceful: flush) or lost
// (abandon) partitions and waits for them.
func (r *Runner) stopWorkers(m map[string][]int32, graceful bool) {
	r.mu.Lock()
	var ws []*worker
	for topic, parts := range m {
		for _, p := range parts {
			k := tp{Topic: topic, Partition: p}
			if w := r.workers[k]; w != nil {
				ws = append(ws, w)
				delete(r.workers, k)
			}
			r.unrefuse(k)
		}
	}
	r.shareMemory()
	r.mu.Unlock()
	r.stop(ws, graceful)
}

// shareMemory splits StateCacheBytes, BatchBytes and MaxPendingBytes
// equally among the partitions the runner holds, so that what a process
// holds for a projection does not grow with its partitions (a cache past
// a smaller share shrinks after its next batch; a batch ends at its
// worker's share; a queue pauses at its next fetch). A queue's share is
// at least a fetch's share of a partition (FetchMaxPartitionBytes, unless
// MaxPendingBytes is smaller): below it, a partition would pause after
// every fetch. r.mu is held.
func (r *Runner) shareMemory() {
	n := int64(max(1, len(r.workers)))
	r.cacheShare.Store(max(1024, r.cfg.StateCacheBytes/n))
	r.batchShare.Store(max(1024, r.cfg.BatchBytes/n))
	r.waiting.share.Store(max(min(r.cfg.MaxPendingBytes, r.cfg.FetchMaxPartitionBytes), r.cfg.MaxPendingBytes/n))
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
	timer := time.NewTimer(r.cfg.ShutdownTimeout)
	defer timer.Stop()
	for _, w := range ws {
		select {
		case <-w.done:
		case <-timer.C:
			r.log.Warn("worker did not finish in time; abandoning its batch", "topic", w.k.Topic, "partition", w.k.Partition)
			w.abandon()
			<-w.done
		}
	}
}

// commit marks the batch's end for the group's autocommit (a hint for
// tools and lag; positions in ClickHouse are the truth).
func (r *Runner) commit(k tp, last int64) {
	r.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{k.Topic: {k.Partition: {Epoch: -1, Offset: last + 1}}})
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

// Ready reports nil when ClickHouse accepts the runner's inserts and it
// projects every partition it was assigned; otherwise the reasons.
func (r *Runner) Ready() error {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if r.healthErr != nil {
		return r.healthErr
	}
	var errs []error
	for _, err := range r.refused {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
