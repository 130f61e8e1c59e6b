package projectors

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/store"
)

// committer is a partition's sink: it makes the applier's batches durable
// — encode every row, insert every table (State last), checkpoints, the
// Kafka commit mark, side effects. By default it persists each batch on
// the worker's goroutine, which waits for it: measured with ClickHouse on
// the same two cores, overlapping the next batch with the insert gained
// no throughput and doubled produce→query latency. With Pipeline(true) it
// persists on a goroutine of its own while the applier builds the next
// batch, for deployments where ClickHouse has cores of its own. Either
// way batches of a partition are persisted strictly one after the other:
// batch k+1's first insert starts after batch k's checkpoints, which keeps
// "a table holding offset X holds every row up to X" true (see DESIGN.md).
// At most one batch waits while one is inserted.
type committer struct {
	*partition
	pipelined bool
	wctx      context.Context    // the worker's: the pipelined goroutine persists under it
	abandon   context.CancelFunc // stops the worker: a batch that is not durable stops the partition

	fenceChecked time.Time // last time the claim was seen still current

	// Not pipelined: the last offset of the durable batch whose
	// checkpoints are deferred, -1 for none. They are written with the
	// next batch's first inserts, or by settle (see persist).
	pending int64

	// Pipelined only: the goroutine takes batches from q; slots holds one
	// token per batch put and not yet durable or dropped.
	q       chan *batch
	slots   chan struct{}
	started bool // the goroutine runs (used by the worker's goroutine only)
	done    chan struct{}

	mu       sync.Mutex
	err      error            // first persist failure; the worker stops
	rejected []reject         // aggregates to park, for the applier (rejects)
	refused  map[string]int64 // aggregate → first refused offset: purged from later batches
}

var _ sink = (*committer)(nil)

func newCommitter(p *partition, pipelined bool, wctx context.Context, abandon context.CancelFunc) *committer {
	return &committer{partition: p, pipelined: pipelined, wctx: wctx, abandon: abandon, pending: -1, q: make(chan *batch, 1),
		slots: make(chan struct{}, 2), done: make(chan struct{}), refused: map[string]int64{}}
}

func (c *committer) put(ctx context.Context, b *batch) error {
	if err := c.failure(); err != nil {
		return err
	}
	if !c.pipelined {
		return c.commit(ctx, b)
	}
	if !c.started {
		c.started = true
		go c.loop()
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.q <- b // never blocks: one batch in q, one being persisted at most
	return nil
}

func (c *committer) sync(ctx context.Context) error {
	if c.started {
		// Holding every slot means no batch is in flight.
		held := 0
		defer func() {
			for range held {
				<-c.slots
			}
		}()
		for held < cap(c.slots) {
			select {
			case c.slots <- struct{}{}:
				held++
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return c.failure()
}

// settle writes the checkpoints deferred from the last durable batch.
func (c *committer) settle(ctx context.Context) error {
	if c.pending < 0 {
		return c.failure()
	}
	return c.commit(ctx, &batch{})
}

func (c *committer) waiting() bool { return len(c.q) > 0 }

func (c *committer) rejects() []reject {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.rejected
	c.rejected = nil
	return rs
}

// stop ends the goroutine and waits for it: after stop no batch of the
// worker can reach ClickHouse.
func (c *committer) stop() {
	if c.started {
		close(c.q)
		<-c.done
	}
}

func (c *committer) loop() {
	defer close(c.done)
	for b := range c.q {
		if c.failure() == nil {
			_ = c.commit(c.wctx, b)
		}
		<-c.slots
	}
}

func (c *committer) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// commit persists b; a failure stops the partition.
func (c *committer) commit(ctx context.Context, b *batch) error {
	err := c.persist(ctx, b)
	if err == nil {
		return nil
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	if errors.Is(err, chclient.ErrPermanent) {
		// Retrying cannot cure it: the partition stops, named in /readyz,
		// until the cause is fixed and it is assigned anew.
		c.r.stopPartition(c.k, err)
	}
	c.abandon()
	return err
}

// persist makes one batch durable: its rows, then its checkpoints, then the
// Kafka commit mark (a hint), then side effects. An empty batch (settle)
// writes the deferred checkpoints only.
//
// Checkpoints only advance tables that got no rows of a batch (a table's
// position is the higher of its rows' and its checkpoint, see DESIGN.md):
// they need not be durable before the next batch, and a batch's
// checkpoints are deferred to the first inserts of the next one, which
// they join concurrently — one round trip to ClickHouse less per batch,
// out of three. Two kinds of batch write them at once: those with side
// effects (the cut-over's hand-over reads positions to split effects
// between generations, so a batch's effects must follow positions that
// show it) and, pipelined, every batch. A crash loses at most the
// deferred ones: the next owner then re-reads one batch for tables that
// got no rows of it, and drops what they already hold.
func (c *committer) persist(ctx context.Context, b *batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.events == 0 {
		return c.writePending(ctx)
	}
	start := time.Now()
	covered, err := c.r.group.persist(ctx, c, b)
	if err != nil {
		return err
	}
	switch {
	case covered:
		// Positions show the batch through the State table.
	case c.pipelined || len(b.effects) > 0:
		if err := c.writeCheckpoints(ctx, b.last); err != nil {
			return err
		}
	default:
		c.pending = b.last
	}
	// A stale member's writes are dropped by the guard without an error.
	// Side effects are not: they run only after checking that this member
	// still holds the partition (and the check runs now and then anyway, so
	// that a member that lost it stops). A freeze between the check and
	// the effect can still run one twice: effects are at-most-once per
	// member, not across members.
	if len(b.effects) > 0 || time.Since(c.fenceChecked) >= c.r.cfg.FenceCheckInterval {
		if err := c.checkFence(ctx); err != nil {
			return err
		}
	}
	c.r.commit(c.k, b.last)
	lo, hi := int64(-1), int64(store.OpenEnd)
	if len(b.effects) > 0 && c.r.cfg.effectsByGen {
		var err error
		if lo, hi, err = store.EffectsWindow(ctx, c.r.conn, c.proj.Name, c.r.cfg.generation, c.k); err != nil {
			return err
		}
	}
	for _, e := range b.effects {
		if e.off <= lo || e.off > hi {
			continue // another generation's (see store/effects.go)
		}
		if err := e.fn(ctx); err != nil {
			c.log.Warn("side effect failed", "err", err)
		}
	}
	m := c.r.metrics
	m.events.WithLabelValues(c.proj.Name).Add(float64(b.applied))
	m.batches.WithLabelValues(c.proj.Name).Inc()
	m.batchEvents.WithLabelValues(c.proj.Name).Observe(float64(b.events))
	m.flushSeconds.WithLabelValues(c.proj.Name).Observe(time.Since(start).Seconds())
	part := fmt.Sprint(c.k.Partition)
	m.position.WithLabelValues(c.proj.Name, c.k.Topic, part).Set(float64(b.last))
	if !b.maxTs.IsZero() {
		m.lastEventTs.WithLabelValues(c.proj.Name, c.k.Topic, part).Set(float64(b.maxTs.UnixMilli()) / 1000)
	}
	return nil
}

// persistRows makes b's rows durable alone (persistGroup with one member):
// a parked aggregate's replay (dlq.go) between batches.
func (c *committer) persistRows(ctx context.Context, b *batch) (covered bool, err error) {
	m := &member{c: c, b: b, ctx: ctx}
	persistGroup(ctx, c.r, []*member{m})
	if m.ok && c.pending >= 0 {
		c.pending = -1
	}
	return m.covered, m.err
}

// dedupToken identifies a set of rows of one table by their positions:
// the same rows always give the same token, different row sets different
// tokens (a parked aggregate's replay inserts a subset of old offsets, so
// the token covers every offset, hashed when there are many).
func dedupToken(proj string, gen int, table string, k tp, rows []pendingRow) string {
	h := fnv.New64a()
	var buf [8]byte
	for _, r := range rows {
		binary.LittleEndian.PutUint64(buf[:], uint64(r.off))
		h.Write(buf[:])
	}
	return fmt.Sprintf("reel/%s/g%d/%s/%s/%d/%d-%d/%d/%x", proj, gen, table, k.Topic, k.Partition,
		rows[0].off, rows[len(rows)-1].off, len(rows), h.Sum64())
}

type rowError struct {
	row pendingRow
	err error
}

func (e *rowError) Error() string { return fmt.Sprintf("row of offset %d: %v", e.row.off, e.err) }
func (e *rowError) Unwrap() error { return e.err }

// rejectIn parks an aggregate within b from offset off on: its rows leave
// every table of b and its records go to the parked table. The applier
// learns of it through rejects; batches handed over meanwhile are
// purged by purgeRejected.
func (c *committer) rejectIn(b *batch, key string, off int64, cause error) {
	c.mu.Lock()
	if from, ok := c.refused[key]; !ok || off < from {
		c.refused[key] = off
	}
	c.rejected = append(c.rejected, reject{key, off})
	c.mu.Unlock()
	c.purge(b, key, off, cause)
	c.log.Warn("ClickHouse's driver refused a row; parked its aggregate", "aggregate", key, "offset", off, "err", cause)
}

// purgeRejected parks, in b, aggregates rejected in earlier batches.
func (c *committer) purgeRejected(b *batch) {
	c.mu.Lock()
	rej := make(map[string]int64, len(c.refused))
	for k, v := range c.refused {
		rej[k] = v
	}
	c.mu.Unlock()
	for key, from := range rej {
		c.purge(b, key, from, nil)
	}
}

// writePending writes the checkpoints deferred from the last batch.
func (c *committer) writePending(ctx context.Context) error {
	if c.pending < 0 {
		return nil
	}
	if err := c.writeCheckpoints(ctx, c.pending); err != nil {
		return err
	}
	c.pending = -1
	return nil
}

// writeCheckpoints records, for every table of the generation, that the
// partition is applied up to last (store.CheckpointsInsert).
func (c *committer) writeCheckpoints(ctx context.Context, last int64) error {
	stmt, args := store.CheckpointsInsert(c.layout, c.k, last, c.claim.epoch)
	fctx := c.fenced(ctx, nil)
	err := c.r.retry.Do(ctx, "checkpoint", func(context.Context) error {
		t0 := time.Now()
		err := c.r.conn.Exec(fctx, stmt, args...)
		if err == nil {
			c.r.metrics.insertSeconds.WithLabelValues(c.proj.Name, store.CheckpointsTable).Observe(time.Since(t0).Seconds())
		}
		return err
	},
		func(attempt int, err error) {
			c.r.metrics.retries.WithLabelValues(c.proj.Name).Inc()
			c.log.Warn("checkpoint write failed; retrying", "attempt", attempt+1, "err", err)
		})
	if err != nil {
		return fmt.Errorf("write checkpoints: %w", err)
	}
	return nil
}

// fenced tags a write with the partition's claim (see fence.go).
func (p *partition) fenced(ctx context.Context, extra clickhouse.Settings) context.Context {
	return fencedCtx(ctx, p.proj.Name, p.layout.Generation, p.k, p.claim.epoch, extra)
}

// checkFence returns ErrFenced when another member claimed the partition
// after this worker. A failed check is not fatal: the guard keeps the data
// safe either way.
func (c *committer) checkFence(ctx context.Context) error {
	e, err := currentEpoch(ctx, c.r.conn, c.layout, c.k)
	if err != nil {
		c.log.Warn("cannot check the partition's claim", "err", err)
		return nil
	}
	c.fenceChecked = time.Now()
	if e != c.claim.epoch {
		c.r.fenced(c.k, c.claim.epoch, e)
		return ErrFenced
	}
	return nil
}
