package projectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// Park reasons, stored in the parked table's reason column.
const (
	ReasonDecode    = "decode"    // bytes/schema/headers could not be decoded
	ReasonApply     = "apply"     // the projection's Apply returned an error
	ReasonInsert    = "insert"    // ClickHouse rejected a row the event produced
	ReasonAggregate = "aggregate" // an earlier event of the aggregate is parked
)

// worker projects one topic partition, in order. It owns the partition's
// batch, its positions and the state cache of the partition's aggregates.
type worker struct {
	r      *Runner
	proj   *projection.Projection
	layout *store.Layout
	k      tp
	log    *slog.Logger
	claim  claim // this member's claim of the partition; every write carries its epoch

	fenceChecked time.Time // last time the flusher saw the claim still current

	ckpt       []int64          // per physical table: highest offset it holds
	parkedFrom map[string]int64 // aggregate → first parked offset
	stateIdx   int              // Projection.Tables index of the State table, -1
	keyCol     int              // State table's key column index
	cache      map[string][]any // aggregate → current state row; nil value = known absent
	authorit   bool             // cache holds every aggregate of the partition
	seen       int64            // highest offset taken from the poll loop

	// Records handed over by the poll loop. The poll loop never blocks on a
	// worker: it appends here and pauses the partition's fetching once
	// maxPending records wait; the worker resumes it when it takes them.
	pendMu  sync.Mutex
	pending [][]*kgo.Record
	npend   int
	paused  bool
	signal  chan struct{}              // capacity 1: records are pending
	ctl     chan func(context.Context) // operator requests (dlq.go), run between batches
	stop    chan struct{}              // close: finish the batch, then exit
	abandon context.CancelFunc
	ctx     context.Context // canceled: drop the batch and exit
	done    chan struct{}

	b  batch
	fl *flusher
}

type batch struct {
	rows    [][]pendingRow // per physical table
	recs    []*kgo.Record  // every record of the batch (for parking on insert rejection)
	first   int64
	last    int64
	events  int // records in the batch
	applied int // of them, events applied (not skipped or parked)
	started time.Time
	effects []effect
	maxTs   time.Time
	epoch   uint64 // the writer's claim, carried by every row
}

type pendingRow struct {
	off    int64
	key    string
	values []any // user columns followed by system columns
}

func newWorker(r *Runner, c claim, ckpt []int64, parked map[string]int64) *worker {
	k := c.k
	w := &worker{
		r: r, proj: r.proj, layout: r.layout, k: k, claim: c,
		log:        r.log.With("topic", k.Topic, "partition", k.Partition, "epoch", c.epoch),
		ckpt:       ckpt,
		parkedFrom: parked,
		stateIdx:   -1,
		cache:      map[string][]any{},
		signal:     make(chan struct{}, 1),
		ctl:        make(chan func(context.Context)),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	w.ctx, w.abandon = context.WithCancel(r.ctx)
	w.fl = newFlusher(w)
	w.seen = minOf(ckpt)
	if w.parkedFrom == nil {
		w.parkedFrom = map[string]int64{}
	}
	for i, t := range r.proj.Tables {
		if t.State {
			w.stateIdx = i
			for j, c := range t.Columns {
				if c.Name == t.Key {
					w.keyCol = j
				}
			}
			// Nothing of this partition in the state table: every aggregate
			// will be seen from its first event, so misses mean "absent".
			w.authorit = ckpt[r.layout.ByUser[i]] < 0
		}
	}
	w.resetBatch()
	return w
}

// startOffset is where consumption resumes: one past the lowest position
// any table holds (tables ahead of it drop the rows they already have).
func (w *worker) startOffset() int64 { return minOf(w.ckpt) + 1 }

func (w *worker) resetBatch() {
	w.b = batch{rows: make([][]pendingRow, len(w.layout.Tables)), first: -1, last: -1, epoch: w.claim.epoch}
}

// run consumes w.in until stop (graceful: flush) or abandon.
func (w *worker) run() {
	ctx := w.ctx
	defer close(w.done)
	defer func() {
		// No batch of this worker may reach ClickHouse after done: the next
		// owner of the partition reads positions once it is assigned.
		w.abandon()
		w.fl.stop()
	}()
	tick := time.NewTicker(w.r.cfg.flushInterval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			// Finish the batch in flight; records handed over but not yet
			// applied are left for the next owner, which re-reads them from
			// the positions in ClickHouse. Shutdown stays quick with big
			// fetches.
			if err := w.flush(ctx); err != nil && ctx.Err() == nil {
				w.log.Warn("final flush abandoned", "err", err)
			}
			return
		case fn := <-w.ctl:
			fn(ctx)
		case <-w.signal:
			for _, recs := range w.take() {
				w.process(ctx, recs)
				if ctx.Err() != nil {
					return
				}
				select {
				case <-w.stop:
					// Leave the rest to the next owner; flush below.
					if err := w.flush(ctx); err != nil && ctx.Err() == nil {
						w.log.Warn("final flush abandoned", "err", err)
					}
					return
				default:
				}
			}
			if w.b.events >= w.r.cfg.batchEvents {
				if w.commitBatch(ctx) != nil {
					return
				}
			}
		case <-tick.C:
			w.applyRejects()
			// While a batch already waits for the flusher, keep growing this
			// one: batches adapt to how fast ClickHouse takes them, instead of
			// queueing many small ones that each pay the per-insert cost.
			if w.b.events > 0 && time.Since(w.b.started) >= w.r.cfg.flushInterval && len(w.fl.q) == 0 {
				if w.commitBatch(ctx) != nil {
					return
				}
			}
		}
	}
}

// enqueue is called by the poll loop; it never blocks. Past maxPending
// waiting records it pauses the partition's fetching: that is the
// backpressure that keeps memory bounded while ClickHouse is slow or down.
func (w *worker) enqueue(recs []*kgo.Record) {
	w.pendMu.Lock()
	w.pending = append(w.pending, recs)
	w.npend += len(recs)
	if w.npend >= w.r.cfg.maxPending && !w.paused {
		w.paused = true
		// Under pendMu, so that a concurrent take cannot resume first and
		// leave the partition paused for good.
		w.r.cl.PauseFetchPartitions(map[string][]int32{w.k.Topic: {w.k.Partition}})
		w.r.metrics.paused.WithLabelValues(w.proj.Name).Inc()
	}
	w.pendMu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// take returns every pending chunk and resumes fetching if it was paused.
func (w *worker) take() [][]*kgo.Record {
	w.pendMu.Lock()
	defer w.pendMu.Unlock()
	out := w.pending
	w.pending, w.npend = nil, 0
	if w.paused {
		w.paused = false
		w.r.cl.ResumeFetchPartitions(map[string][]int32{w.k.Topic: {w.k.Partition}})
	}
	return out
}

func (w *worker) process(ctx context.Context, recs []*kgo.Record) {
	if w.stateIdx >= 0 && !w.authorit {
		w.prefetch(ctx, recs)
	}
	w.applyRejects()
	for _, rec := range recs {
		w.processOne(ctx, rec)
		if w.b.events >= w.r.cfg.batchEvents {
			if w.commitBatch(ctx) != nil {
				return
			}
		}
	}
}

func (w *worker) processOne(ctx context.Context, rec *kgo.Record) {
	// Offsets only move forward in a worker. The poll loop can hand over
	// records the worker already took: ones it held from a poll made before
	// the partition was revoked and assigned here again, followed by the
	// same offsets fetched for the new assignment. Within one batch nothing
	// else would stop them from being applied twice.
	if rec.Offset <= w.seen {
		return
	}
	w.seen = rec.Offset
	w.applyRecord(ctx, rec, w.ckpt, false)
}

// applyRecord applies one record. ck holds, per physical table, the highest
// offset the table already has: rows at or below it are not queued again.
// replaying is true when a parked aggregate is being re-applied (dlq.go):
// the record is not part of the batch's offset range then, and the
// aggregate's parking does not apply to it.
func (w *worker) applyRecord(ctx context.Context, rec *kgo.Record, ck []int64, replaying bool) error {
	off := rec.Offset
	advance := func() {
		if !replaying {
			w.advance(rec)
		}
	}
	// Entirely applied already (only within the recovery window after a
	// crash): the State table is written last, so every table has it.
	if w.stateIdx >= 0 && off <= ck[w.layout.ByUser[w.stateIdx]] {
		advance()
		return nil
	}
	if off <= minOf(ck) {
		advance()
		return nil
	}
	key := string(rec.Key)
	if from, ok := w.parkedFrom[key]; ok && off >= from && !replaying {
		w.park(rec, key, ReasonAggregate, fmt.Errorf("aggregate %q parked since offset %d", key, from), schemas.Event{})
		return nil
	}
	ev, err := w.decode(ctx, rec)
	if err != nil {
		if ctx.Err() != nil {
			return err // stopping; the next owner decodes it again
		}
		if !replaying {
			w.park(rec, key, ReasonDecode, err, ev)
		}
		return err
	}
	if key == "" && ev.AggregateID != "" {
		// No record key: the decoder took the aggregate ID from the
		// payload's aggregate field (catalog.yaml).
		key = ev.AggregateID
		if from, ok := w.parkedFrom[key]; ok && off >= from && !replaying {
			w.park(rec, key, ReasonAggregate, fmt.Errorf("aggregate %q parked since offset %d", key, from), ev)
			return nil
		}
	}
	if !w.proj.Wants(ev.Type) {
		advance()
		return nil
	}
	// An event some table already holds was applied before (a crash's
	// recovery window, or history re-read for a table added by a
	// migration): its side effects are not run again.
	held := off <= maxOf(ck)
	tx := &eventTx{w: w, pos: projection.Position{Topic: rec.Topic, Partition: rec.Partition, Offset: off}, key: key, ts: ev.OccurredAt, replay: w.r.cfg.replay || held,
		noEffects: held || (w.r.cfg.replay && !w.r.cfg.effectsByGen)}
	if err := w.proj.Apply(ctx, tx, ev); err != nil {
		if !replaying {
			w.park(rec, key, ReasonApply, err, ev)
		}
		return err
	}
	ts := recordTime(rec, ev)
	for _, row := range tx.rows {
		pi := w.layout.ByUser[row.table]
		w.addRow(pi, off, key, ts, row.values, ck)
		if h := w.layout.HistoryOf[row.table]; h >= 0 {
			w.addRow(h, off, key, ts, row.values, ck)
		}
	}
	if tx.state != nil {
		w.cache[key] = tx.state
	}
	w.b.effects = append(w.b.effects, tx.effects...)
	advance()
	w.b.applied++
	return nil
}

// decode decodes rec, waiting out failures the decoder calls retriable
// (the schema registry unreachable): those say nothing about the event,
// so it must not be parked for them. The partition waits meanwhile.
func (w *worker) decode(ctx context.Context, rec *kgo.Record) (schemas.Event, error) {
	for attempt := 0; ; attempt++ {
		ev, err := w.r.dec.Decode(ctx, rec)
		var de *schemas.DecodeError
		if err == nil || !errors.As(err, &de) || !de.Retriable() {
			if attempt > 0 && err == nil {
				w.r.setHealthy(true, nil)
			}
			return ev, err
		}
		w.r.setHealthy(false, err)
		w.r.metrics.retries.WithLabelValues(w.proj.Name).Inc()
		w.log.Warn("cannot decode; retrying", "offset", rec.Offset, "attempt", attempt+1, "err", err)
		if err := w.r.retry.Sleep(ctx, attempt); err != nil {
			return ev, err
		}
	}
}

func maxOf(v []int64) int64 {
	hi := v[0]
	for _, c := range v[1:] {
		hi = max(hi, c)
	}
	return hi
}

func minOf(v []int64) int64 {
	lo := v[0]
	for _, c := range v[1:] {
		lo = min(lo, c)
	}
	return lo
}

func recordTime(rec *kgo.Record, ev schemas.Event) time.Time {
	if !ev.OccurredAt.IsZero() {
		return ev.OccurredAt.UTC()
	}
	return rec.Timestamp.UTC()
}

// addRow queues a row unless the table already holds that offset (ck).
func (w *worker) addRow(pi int, off int64, key string, ts time.Time, user []any, ck []int64) {
	if off <= ck[pi] {
		return
	}
	w.b.add(pi, w.k, off, key, ts, user)
}

// add queues a row of table pi with its source position.
func (b *batch) add(pi int, k tp, off int64, key string, ts time.Time, user []any) {
	vals := make([]any, 0, len(user)+store.InsertColumns)
	vals = append(vals, user...)
	vals = append(vals, k.Topic, uint32(k.Partition), uint64(off), ts, b.epoch)
	b.rows[pi] = append(b.rows[pi], pendingRow{off: off, key: key, values: vals})
}

// advance records that rec belongs to the current batch.
func (w *worker) advance(rec *kgo.Record) {
	if w.b.events == 0 {
		w.b.started = time.Now()
		w.b.first = rec.Offset
	}
	w.b.events++
	w.b.last = rec.Offset
	w.b.recs = append(w.b.recs, rec)
	if rec.Timestamp.After(w.b.maxTs) {
		w.b.maxTs = rec.Timestamp
	}
}

// park sends rec to the parked table and parks its aggregate from here on.
func (w *worker) park(rec *kgo.Record, key, reason string, cause error, ev schemas.Event) {
	if _, ok := w.parkedFrom[key]; !ok {
		w.parkedFrom[key] = rec.Offset
		w.log.Warn("parked aggregate", "aggregate", key, "offset", rec.Offset, "reason", reason, "err", cause)
	}
	w.addRow(w.layout.Parked, rec.Offset, key, rec.Timestamp.UTC(), parkedRow(rec, key, ev, reason, cause), w.ckpt)
	w.advance(rec)
	w.r.metrics.parked.WithLabelValues(w.proj.Name, reason).Inc()
}

// parkedRow is the parked table's row for rec (parkedColumns order). The
// event type and ID come from the decoded event when there is one, else
// from the record's headers.
func parkedRow(rec *kgo.Record, key string, ev schemas.Event, reason string, cause error) []any {
	hdr := make(map[string]string, len(rec.Headers))
	for _, h := range rec.Headers {
		hdr[h.Key] = string(h.Value)
	}
	evType, evID := ev.Type, ev.ID
	if evType == "" {
		evType = hdr[schemas.HeaderType]
	}
	if evID == "" {
		evID = hdr[schemas.HeaderEventID]
	}
	return []any{key, evType, evID, reason, errString(cause), string(rec.Key), string(rec.Value), hdr, time.Now().UTC()}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// loadState returns an aggregate's state row from the cache or ClickHouse.
func (w *worker) loadState(key string) ([]any, bool, error) {
	if row, ok := w.cache[key]; ok {
		return row, row != nil, nil
	}
	if w.authorit {
		return nil, false, nil
	}
	if err := w.fetchStates(context.Background(), []string{key}); err != nil {
		return nil, false, err
	}
	row := w.cache[key]
	return row, row != nil, nil
}

// prefetch loads, in one query, the state of every aggregate in recs that
// the cache does not know.
func (w *worker) prefetch(ctx context.Context, recs []*kgo.Record) {
	var keys []string
	seen := map[string]bool{}
	for _, r := range recs {
		k := string(r.Key)
		if _, ok := w.cache[k]; ok || seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return
	}
	if err := w.fetchStates(ctx, keys); err != nil {
		// Not fatal: State() loads one by one and reports errors to Apply.
		w.log.Warn("state prefetch failed", "err", err)
	}
}

func (w *worker) fetchStates(ctx context.Context, keys []string) error {
	t := w.proj.Tables[w.stateIdx]
	pt := w.layout.Tables[w.layout.ByUser[w.stateIdx]]
	q := fmt.Sprintf("SELECT %s FROM %s FINAL WHERE _topic = ? AND _partition = ? AND %s IN (?)", store.ColumnList(t.Columns), pt.Name, t.Key)
	var rows driver.Rows
	var err error
	for attempt := 0; ; attempt++ {
		rows, err = w.r.conn.Query(ctx, q, w.k.Topic, uint32(w.k.Partition), keys)
		if err == nil || ctx.Err() != nil || attempt >= 5 {
			break
		}
		var retry bool
		if retry, err = w.r.retry.Observe("load state", err); !retry || w.r.retry.Sleep(ctx, attempt) != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("load state of %d aggregates from %s: %w", len(keys), pt.Name, err)
	}
	defer rows.Close()
	for _, k := range keys {
		w.cache[k] = nil
	}
	// Scan into the driver's own types for each column, so that loaded
	// values are exactly what Apply would have emitted.
	var types []reflect.Type
	for _, ct := range rows.ColumnTypes() {
		types = append(types, ct.ScanType())
	}
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, typ := range types {
			ptrs[i] = reflect.New(typ).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("scan state row of %s: %w", pt.Name, err)
		}
		dst := make([]any, len(types))
		for i := range dst {
			dst[i] = reflect.ValueOf(ptrs[i]).Elem().Interface()
		}
		k, _ := dst[w.keyCol].(string)
		w.cache[k] = dst
	}
	return rows.Err()
}
