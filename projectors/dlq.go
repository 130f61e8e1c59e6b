package projectors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors/store"
)

// Resolutions recorded in _reel_parked_resolved.
const (
	ResolutionReplayed  = "replayed"
	ResolutionDiscarded = "discarded"
)

// ErrNotOwner is returned when the aggregate's partition is not assigned to
// this runner; ask the replica that owns it (see `reel status`).
var ErrNotOwner = errors.New("partition of the aggregate is not assigned to this projector")

// ErrNotParked is returned when the aggregate has no unresolved parked events.
var ErrNotParked = errors.New("aggregate has no parked events")

// ReplayResult says what a replay or discard did.
type ReplayResult struct {
	Aggregate string `json:"aggregate"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Resolved  int    `json:"resolved"`        // events applied (replay) or dropped (discard)
	StillHeld int    `json:"still_parked"`    // events that failed again and stay parked
	Error     string `json:"error,omitempty"` // why the first still-parked event failed
}

// ReplayParked re-applies an aggregate's parked events, in order, after the
// cause was fixed (a new build of the projection, a registered schema). The
// partition's worker does it between two batches, so live events of the
// aggregate cannot overtake it. If an event fails again, it and every later
// event of the aggregate stay parked.
func (r *Runner) ReplayParked(ctx context.Context, aggregate string) (ReplayResult, error) {
	return r.resolveParked(ctx, aggregate, true)
}

// DiscardParked drops an aggregate's parked events for good and lets its
// later events flow again. The aggregate's state stays as it was before
// the first parked event.
func (r *Runner) DiscardParked(ctx context.Context, aggregate string) (ReplayResult, error) {
	return r.resolveParked(ctx, aggregate, false)
}

func (r *Runner) resolveParked(ctx context.Context, aggregate string, replay bool) (ReplayResult, error) {
	recs, err := r.parkedRecords(ctx, aggregate)
	if err != nil {
		return ReplayResult{}, err
	}
	if len(recs) == 0 {
		return ReplayResult{Aggregate: aggregate}, ErrNotParked
	}
	k := tp{Topic: recs[0].Topic, Partition: recs[0].Partition}
	r.mu.Lock()
	w := r.workers[k]
	r.mu.Unlock()
	if w == nil {
		return ReplayResult{}, fmt.Errorf("%w: %s/%d", ErrNotOwner, k.Topic, k.Partition)
	}
	type answer struct {
		res ReplayResult
		err error
	}
	ch := make(chan answer, 1)
	op := func(wctx context.Context) {
		res, err := w.resolve(wctx, aggregate, recs, replay)
		ch <- answer{res, err}
	}
	select {
	case w.ctl <- op:
	case <-w.done:
		return ReplayResult{}, fmt.Errorf("%w: %s/%d was revoked", ErrNotOwner, k.Topic, k.Partition)
	case <-ctx.Done():
		return ReplayResult{}, ctx.Err()
	}
	select {
	case a := <-ch:
		return a.res, a.err
	case <-ctx.Done():
		return ReplayResult{}, ctx.Err()
	}
}

// parkedRecords loads an aggregate's unresolved parked events as records.
func (r *Runner) parkedRecords(ctx context.Context, aggregate string) ([]*kgo.Record, error) {
	evs, err := store.QueryParkedEvents(ctx, r.conn, r.proj.Name, r.layout.Generation, aggregate)
	if err != nil {
		return nil, err
	}
	out := make([]*kgo.Record, 0, len(evs))
	for _, e := range evs {
		rec := &kgo.Record{Topic: e.Topic, Partition: e.Partition, Offset: e.Offset, Timestamp: e.EventTime, Key: []byte(e.Key), Value: e.Value}
		for k, v := range e.Headers {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		out = append(out, rec)
	}
	return out, nil
}

// resolve runs on the worker goroutine, between batches.
func (w *worker) resolve(ctx context.Context, key string, recs []*kgo.Record, replay bool) (ReplayResult, error) {
	res := ReplayResult{Aggregate: key, Topic: w.k.Topic, Partition: w.k.Partition}
	a, c := w.a, w.c
	if err := a.flush(ctx); err != nil {
		return res, err
	}
	var done []*kgo.Record
	if replay {
		// What an earlier, interrupted replay already wrote: per table, the
		// highest of these offsets present. Applying the same rule as crash
		// recovery keeps the replay exactly-once.
		ck, err := w.keyPositions(ctx, recs)
		if err != nil {
			return res, err
		}
		a.cache.drop(key)
		// The operator says the cause is fixed: rows of the aggregate are
		// no longer refused by default.
		c.mu.Lock()
		delete(c.refused, key)
		c.mu.Unlock()
		saved := a.b
		a.resetBatch()
		for _, rec := range recs {
			if err := a.applyRecord(ctx, rec, ck, true); err != nil {
				res.Error = fmt.Sprintf("offset %d: %v", rec.Offset, err)
				break
			}
			done = append(done, rec)
		}
		_, err = c.persistRows(ctx, &a.b)
		a.b = saved
		if err != nil {
			return res, err
		}
		a.cache.drop(key) // the failed event may have touched it
	} else {
		done = recs
	}
	if err := w.markResolved(ctx, done, map[bool]string{true: ResolutionReplayed, false: ResolutionDiscarded}[replay]); err != nil {
		return res, err
	}
	// The guard drops a stale member's writes silently: before reporting
	// success, make sure this member still held the partition.
	if err := c.checkFence(ctx); err != nil {
		return res, err
	}
	res.Resolved = len(done)
	res.StillHeld = len(recs) - len(done)
	if res.StillHeld > 0 {
		a.parkedFrom[key] = recs[len(done)].Offset
	} else {
		delete(a.parkedFrom, key)
	}
	w.log.Info("parked aggregate resolved", "aggregate", key, "replay", replay, "resolved", res.Resolved, "still_parked", res.StillHeld)
	return res, nil
}

// keyPositions returns, per physical table, the highest of recs' offsets
// the table already holds (-1: none), and for the parked table "all" (the
// events are there already).
func (p *partition) keyPositions(ctx context.Context, recs []*kgo.Record) ([]int64, error) {
	offs := make([]uint64, len(recs))
	for i, r := range recs {
		offs[i] = uint64(r.Offset)
	}
	ck := make([]int64, len(p.layout.Tables))
	for i, t := range p.layout.Tables {
		if i == p.layout.Parked {
			ck[i] = recs[len(recs)-1].Offset
			continue
		}
		var n, mx uint64
		err := p.r.conn.QueryRow(ctx, fmt.Sprintf("SELECT count(), max(_offset) FROM %s WHERE _topic = ? AND _partition = ? AND _offset IN (?)", t.Name),
			p.k.Topic, uint32(p.k.Partition), offs).Scan(&n, &mx)
		if err != nil {
			return nil, fmt.Errorf("check earlier replay in %s: %w", t.Name, err)
		}
		ck[i] = -1
		if n > 0 {
			ck[i] = int64(mx)
		}
	}
	return ck, nil
}

func (p *partition) markResolved(ctx context.Context, recs []*kgo.Record, resolution string) error {
	if len(recs) == 0 {
		return nil
	}
	b, err := p.r.conn.PrepareBatch(p.fenced(ctx, nil), store.ResolvedInsert)
	if err != nil {
		return fmt.Errorf("record resolution: %w", err)
	}
	defer b.Close()
	now := time.Now().UTC()
	for _, r := range recs {
		if err := b.Append(p.proj.Name, uint32(p.layout.Generation), r.Topic, uint32(r.Partition), uint64(r.Offset), resolution, now, p.claim.epoch); err != nil {
			return err
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record resolution: %w", err)
	}
	return nil
}

// landed reports whether rows are in the table after an ambiguous insert
// failure: the batch's last offset is present. Rows re-applied from the
// parked table carry old offsets, so for them the exact offsets are checked.
func (c *committer) landed(ctx context.Context, pt store.PhysTable, rows []pendingRow) (bool, error) {
	last := rows[len(rows)-1].off
	var n uint64
	err := c.r.conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE _topic = ? AND _partition = ? AND _offset = ?", pt.Name),
		c.k.Topic, uint32(c.k.Partition), uint64(last)).Scan(&n)
	return n > 0, err
}
