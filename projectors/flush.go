package projectors

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// A worker applies events; its flusher makes the batches durable. By default
// the worker waits for each batch (commitBatch = flush): measured with
// ClickHouse on the same two cores, overlapping the next batch with the
// insert gained no throughput and doubled produce→query latency. With
// Pipeline(true) the worker only hands the batch over and applies the next
// one meanwhile, for deployments where ClickHouse has cores of its own.
// Either way batches of a partition are persisted strictly one after the
// other: batch k+1's first insert starts after batch k's checkpoints, which
// keeps "a table holding offset X holds every row up to X" true (see
// DESIGN.md). At most one batch waits while one is inserted.
type flusher struct {
	w       *worker
	started sync.Once
	q       chan *batch
	idle    sync.WaitGroup // batches handed over, not yet durable or dropped
	done    chan struct{}

	mu       sync.Mutex
	err      error            // first persist failure; the worker stops
	rejects  []reject         // aggregates to park, for the worker to apply
	rejected map[string]int64 // aggregate → first rejected offset
}

type reject struct {
	key string
	off int64
}

func newFlusher(w *worker) *flusher {
	return &flusher{w: w, q: make(chan *batch, 1), done: make(chan struct{}), rejected: map[string]int64{}}
}

// start runs the flush loop on first use.
func (f *flusher) start() { f.started.Do(func() { go f.w.flushLoop() }) }

// stop ends the flush loop and waits for it: after stop no batch of the
// worker can reach ClickHouse.
func (f *flusher) stop() {
	f.start()
	close(f.q)
	<-f.done
}

func (f *flusher) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (w *worker) flushLoop() {
	defer close(w.fl.done)
	for b := range w.fl.q {
		if w.fl.failure() == nil {
			if err := w.persist(w.ctx, b); err != nil {
				w.fl.mu.Lock()
				w.fl.err = err
				w.fl.mu.Unlock()
				if errors.Is(err, chclient.ErrPermanent) {
					// Retrying cannot cure it: the partition stops, named in
					// /readyz, until the cause is fixed and it is assigned anew.
					w.r.stopPartition(w.k, err)
				}
				w.abandon() // a batch that is not durable stops the partition
			}
		}
		w.fl.idle.Done()
	}
}

// commitBatch ends the current batch: hand it over (Pipeline) or flush it.
func (w *worker) commitBatch(ctx context.Context) error {
	if w.r.cfg.pipeline {
		return w.handoff(ctx)
	}
	return w.flush(ctx)
}

// handoff gives the current batch to the flusher and starts a new one.
func (w *worker) handoff(ctx context.Context) error {
	w.applyRejects()
	if err := w.fl.failure(); err != nil {
		return err
	}
	if w.b.events == 0 {
		return nil
	}
	b := w.b
	// Later records are above the batch; positions only filter re-applied
	// records, so the optimistic update is safe: if the batch never becomes
	// durable, the worker stops and the next owner reads real positions.
	for i := range w.ckpt {
		w.ckpt[i] = max(w.ckpt[i], b.last)
	}
	if len(w.cache) > w.r.cfg.stateCacheSize {
		// Forget everything; later misses are loaded from ClickHouse.
		w.cache = map[string][]any{}
		w.authorit = false
	}
	w.resetBatch()
	w.fl.start()
	w.fl.idle.Add(1)
	select {
	case w.fl.q <- &b:
		return nil
	case <-ctx.Done():
		w.fl.idle.Done()
		return ctx.Err()
	}
}

// flush hands the batch over and waits until every handed-over batch is
// durable.
func (w *worker) flush(ctx context.Context) error {
	if err := w.handoff(ctx); err != nil {
		return err
	}
	idle := make(chan struct{})
	go func() { w.fl.idle.Wait(); close(idle) }()
	select {
	case <-idle:
		w.applyRejects()
		return w.fl.failure()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// persist makes one batch durable: its rows, then its checkpoints, then the
// Kafka commit mark (a hint), then side effects.
func (w *worker) persist(ctx context.Context, b *batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	if err := w.persistRows(ctx, b); err != nil {
		return err
	}
	if err := w.writeCheckpoints(ctx, b.last); err != nil {
		return err
	}
	// A stale member's writes are dropped by the guard without an error.
	// Side effects are not: they run only after checking that this member
	// still holds the partition (and the check runs now and then anyway, so
	// that a member that lost it stops). A freeze between the check and
	// the effect can still run one twice: effects are at-most-once per
	// member, not across members.
	if len(b.effects) > 0 || time.Since(w.fenceChecked) >= w.r.cfg.fenceCheck {
		if err := w.checkFence(ctx); err != nil {
			return err
		}
	}
	w.r.commit(w.k, b.last)
	lo, hi := int64(-1), int64(store.OpenEnd)
	if len(b.effects) > 0 && w.r.cfg.effectsByGen {
		var err error
		if lo, hi, err = store.EffectsWindow(ctx, w.r.conn, w.proj.Name, w.r.cfg.generation, w.k); err != nil {
			return err
		}
	}
	for _, e := range b.effects {
		if e.off <= lo || e.off > hi {
			continue // another generation's (see store/effects.go)
		}
		if err := e.fn(ctx); err != nil {
			w.log.Warn("side effect failed", "err", err)
		}
	}
	m := w.r.metrics
	m.events.WithLabelValues(w.proj.Name).Add(float64(b.applied))
	m.batches.WithLabelValues(w.proj.Name).Inc()
	m.batchEvents.WithLabelValues(w.proj.Name).Observe(float64(b.events))
	m.flushSeconds.WithLabelValues(w.proj.Name).Observe(time.Since(start).Seconds())
	part := fmt.Sprint(w.k.Partition)
	m.position.WithLabelValues(w.proj.Name, w.k.Topic, part).Set(float64(b.last))
	if !b.maxTs.IsZero() {
		m.lastEventTs.WithLabelValues(w.proj.Name, w.k.Topic, part).Set(float64(b.maxTs.UnixMilli()) / 1000)
	}
	return nil
}

// persistRows inserts every table's rows of b: first every row is encoded
// (a row the driver refuses parks its aggregate before anything is sent),
// then the tables other than the State table are sent concurrently, then
// the State table (last, see DESIGN.md).
func (w *worker) persistRows(ctx context.Context, b *batch) error {
	w.purgeRejected(b)
	var prepared []driver.Batch
	var cancels []context.CancelFunc
	release := func() {
		for i, pb := range prepared {
			if pb != nil {
				_ = pb.Close()
			}
			if cancels[i] != nil {
				cancels[i]()
			}
		}
	}
	for {
		prepared = make([]driver.Batch, len(b.rows))
		cancels = make([]context.CancelFunc, len(b.rows))
		var rej *rowError
		for i, rows := range b.rows {
			if len(rows) == 0 {
				continue
			}
			ictx, cancel := context.WithTimeout(ctx, w.r.cfg.insertTimeout)
			cancels[i] = cancel
			pb, err := w.prepare(ictx, w.layout.Tables[i], rows)
			if errors.As(err, &rej) {
				break
			}
			// Any other error (ClickHouse unreachable while describing the
			// table) is left to the send's retry loop.
			prepared[i] = pb
		}
		if rej == nil {
			break
		}
		release()
		w.rejectIn(b, rej.row.key, rej.row.off, rej)
	}
	defer release()

	state := -1
	var wg sync.WaitGroup
	errs := make([]error, len(b.rows))
	for i := range b.rows {
		if len(b.rows[i]) == 0 {
			continue
		}
		if w.layout.Tables[i].State {
			state = i
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.send(ctx, i, b.rows[i], prepared[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if state >= 0 {
		return w.send(ctx, state, b.rows[state], prepared[state])
	}
	return nil
}

// prepare encodes rows into a clickhouse-go batch without sending it. The
// insert carries a deduplication token naming exactly these rows, so every
// retry of them is the same insert to ClickHouse.
func (w *worker) prepare(ctx context.Context, pt store.PhysTable, rows []pendingRow) (driver.Batch, error) {
	ctx = w.fenced(ctx, clickhouse.Settings{
		"insert_deduplication_token": dedupToken(w.proj.Name, w.layout.Generation, pt.Logical, w.k, rows),
	})
	pb, err := w.r.conn.PrepareBatch(ctx, pt.Insert)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if err := pb.Append(r.values...); err != nil {
			_ = pb.Close()
			return nil, &rowError{row: r, err: err}
		}
	}
	return pb, nil
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

// send sends a prepared batch, then retries transient failures with the
// runner's retry policy until the rows land, a permanent error (returned as
// a *chclient.PermanentError) or ctx ends. A retry first checks whether the
// previous attempt landed after all (the rows' last offset is present), so
// an ambiguous failure never duplicates rows.
func (w *worker) send(ctx context.Context, i int, rows []pendingRow, pb driver.Batch) error {
	pt := w.layout.Tables[i]
	for attempt := 0; ; attempt++ {
		var err error
		t0 := time.Now()
		if pb != nil {
			err = pb.Send()
			pb = nil
		} else if pb, err = w.prepare(ctx, pt, rows); err == nil {
			err = pb.Send()
			pb = nil
		}
		if err == nil {
			w.r.metrics.insertSeconds.WithLabelValues(w.proj.Name, pt.Logical).Observe(time.Since(t0).Seconds())
			w.r.metrics.rows.WithLabelValues(w.proj.Name, pt.Logical).Add(float64(len(rows)))
			w.r.setHealthy(true, nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		retry, err := w.r.retry.Observe("insert", err)
		if !retry {
			return fmt.Errorf("insert into %s: %w", pt.Name, err)
		}
		w.r.metrics.retries.WithLabelValues(w.proj.Name).Inc()
		w.r.setHealthy(false, fmt.Errorf("insert into %s: %w", pt.Name, err))
		w.log.Warn("insert failed; retrying", "table", pt.Name, "rows", len(rows), "attempt", attempt+1, "err", err)
		if w.r.retry.Sleep(ctx, attempt) != nil {
			return ctx.Err()
		}
		if ok, err := w.landed(ctx, pt, rows); err == nil && ok {
			w.log.Info("previous insert attempt had landed", "table", pt.Name)
			w.r.setHealthy(true, nil)
			return nil
		}
	}
}

// rejectIn parks an aggregate within b from offset off on: its rows leave
// every table of b and its records go to the parked table. The worker
// learns of it through applyRejects; batches handed over meanwhile are
// purged by purgeRejected.
func (w *worker) rejectIn(b *batch, key string, off int64, cause error) {
	w.fl.mu.Lock()
	if from, ok := w.fl.rejected[key]; !ok || off < from {
		w.fl.rejected[key] = off
	}
	w.fl.rejects = append(w.fl.rejects, reject{key, off})
	w.fl.mu.Unlock()
	w.purge(b, key, off, cause)
	w.log.Warn("ClickHouse's driver refused a row; parked its aggregate", "aggregate", key, "offset", off, "err", cause)
}

// purgeRejected parks, in b, aggregates rejected in earlier batches.
func (w *worker) purgeRejected(b *batch) {
	w.fl.mu.Lock()
	rej := make(map[string]int64, len(w.fl.rejected))
	for k, v := range w.fl.rejected {
		rej[k] = v
	}
	w.fl.mu.Unlock()
	for key, from := range rej {
		w.purge(b, key, from, nil)
	}
}

// applyRejects, on the worker goroutine, parks rejected aggregates in the
// worker's own state and current batch.
func (w *worker) applyRejects() {
	if w.fl == nil {
		return
	}
	w.fl.mu.Lock()
	rs := w.fl.rejects
	w.fl.rejects = nil
	w.fl.mu.Unlock()
	for _, r := range rs {
		if from, ok := w.parkedFrom[r.key]; !ok || r.off < from {
			w.parkedFrom[r.key] = r.off
		}
		// The cached state includes the rejected events: drop it and stop
		// trusting misses.
		delete(w.cache, r.key)
		w.authorit = false
		w.purge(&w.b, r.key, r.off, nil)
	}
}

// purge moves key's events from offset from on out of b's tables and into
// its parked table. cause is the error of the event at from (nil: the
// aggregate was parked earlier).
func (w *worker) purge(b *batch, key string, from int64, cause error) {
	found := false
	for i := range b.rows {
		if i == w.layout.Parked {
			continue
		}
		kept := b.rows[i][:0]
		for _, r := range b.rows[i] {
			if r.key == key && r.off >= from {
				found = true
				continue
			}
			kept = append(kept, r)
		}
		b.rows[i] = kept
	}
	parked := map[int64]bool{}
	for _, r := range b.rows[w.layout.Parked] {
		parked[r.off] = true
	}
	for _, rec := range b.recs {
		if string(rec.Key) != key || rec.Offset < from || parked[rec.Offset] {
			continue
		}
		found = true
		reason, err := ReasonAggregate, fmt.Errorf("aggregate %q parked since offset %d", key, from)
		if rec.Offset == from && cause != nil {
			reason, err = ReasonInsert, cause
		}
		b.add(w.layout.Parked, w.k, rec.Offset, key, rec.Timestamp.UTC(), parkedRow(rec, key, schemas.Event{}, reason, err))
		w.r.metrics.parked.WithLabelValues(w.proj.Name, reason).Inc()
	}
	if found {
		sort.Slice(b.rows[w.layout.Parked], func(i, j int) bool { return b.rows[w.layout.Parked][i].off < b.rows[w.layout.Parked][j].off })
	}
}

// writeCheckpoints records, for every table of the generation, that the
// partition is applied up to last (store.CheckpointsInsert).
func (w *worker) writeCheckpoints(ctx context.Context, last int64) error {
	stmt, args := store.CheckpointsInsert(w.layout, w.k, last, w.claim.epoch)
	fctx := w.fenced(ctx, nil)
	err := w.r.retry.Do(ctx, "checkpoint", func(context.Context) error { return w.r.conn.Exec(fctx, stmt, args...) },
		func(attempt int, err error) {
			w.r.metrics.retries.WithLabelValues(w.proj.Name).Inc()
			w.log.Warn("checkpoint write failed; retrying", "attempt", attempt+1, "err", err)
		})
	if err != nil {
		return fmt.Errorf("write checkpoints: %w", err)
	}
	return nil
}

// fenced tags a write with the worker's claim (see fence.go).
func (w *worker) fenced(ctx context.Context, extra clickhouse.Settings) context.Context {
	return fencedCtx(ctx, w.proj.Name, w.layout.Generation, w.k, w.claim.epoch, extra)
}

// checkFence returns ErrFenced when another member claimed the partition
// after this worker. A failed check is not fatal: the guard keeps the data
// safe either way.
func (w *worker) checkFence(ctx context.Context) error {
	e, err := currentEpoch(ctx, w.r.conn, w.layout, w.k)
	if err != nil {
		w.log.Warn("cannot check the partition's claim", "err", err)
		return nil
	}
	w.fenceChecked = time.Now()
	if e != w.claim.epoch {
		w.r.fenced(w.k, w.claim.epoch, e)
		return ErrFenced
	}
	return nil
}
