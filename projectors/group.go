package projectors

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Group commit: the batches a runner's partitions hand over while an
// insert is running are made durable together, one insert per table for
// all of them (see DESIGN.md, "Group commit"). What an insert costs
// ClickHouse hardly depends on its rows (the load test's insert-cost
// phase), so a projection's partitions flushing at the same time pay it
// once instead of once each. Each batch keeps its own rules: every table
// before its State table, its checkpoints, its rejects; a partition's
// batches are still persisted one after the other, since its committer
// waits for each. Rows carry their partition's epoch, so the guard judges
// each row by its own claim; the insert's log_comment carries every
// member's fence tag, so a new owner's drain stops an insert holding rows
// of its partition.

// member is one partition's batch in a group.
type member struct {
	c   *committer
	b   *batch
	ctx context.Context

	covered bool  // set by the group
	err     error // set by the group
	ok      bool  // the first round (non-State tables, checkpoints) succeeded: the deferred checkpoints are written
	done    chan struct{}
	lead    chan struct{} // cap 1: start the next group
}

// grouper queues the batches of a runner's partitions. The member told to
// lead starts a group of every queued batch; when it ends, the first batch
// queued meanwhile leads the next.
type grouper struct {
	r     *Runner
	mu    sync.Mutex
	queue []*member
	busy  bool // a group runs or a member was told to lead
	// maxRows bounds a group's rows in any one table (0: maxGroupRows).
	maxRows int
}

// persist makes b durable as part of a group and reports whether the
// State table covers it (persistRows). It returns when b is durable or
// failed, or when ctx ends: the rows of a group already sent may still
// land then, under the partition's claim, like any insert in flight when
// a partition is lost (the next owner's drain and guard deal with them).
func (g *grouper) persist(ctx context.Context, c *committer, b *batch) (bool, error) {
	m := &member{c: c, b: b, ctx: ctx, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, m)
	if !g.busy {
		g.busy = true
		m.lead <- struct{}{}
	}
	g.mu.Unlock()
	for {
		select {
		case <-m.done:
			if m.ok && c.pending >= 0 { // (pipelined, never: settle reads it meanwhile)
				c.pending = -1
			}
			return m.covered, m.err
		case <-m.lead:
			g.mu.Lock()
			ms := g.take()
			g.mu.Unlock()
			// On a goroutine of its own: the members' contexts end
			// independently (a partition revoked stops waiting at once).
			g.r.wg.Add(1)
			go func() {
				defer g.r.wg.Done()
				g.run(ms)
			}()
		case <-ctx.Done():
			g.mu.Lock()
			if i := slices.Index(g.queue, m); i >= 0 {
				g.queue = slices.Delete(g.queue, i, i+1)
				select {
				case <-m.lead: // told to lead: pass it on
					g.handOff()
				default:
				}
			}
			g.mu.Unlock()
			return false, ctx.Err()
		}
	}
}

// maxGroupRows bounds a group's rows in any one table (a group holds one
// batch at least): an insert must stay one block, so that it lands as one
// part per table, well below ClickHouse's max_insert_block_size (1,048,576
// rows).
const maxGroupRows = 500_000

// take removes the next group from the queue (g.mu held): the queued
// batches, oldest first, while every table's rows stay within
// maxGroupRows.
func (g *grouper) take() []*member {
	limit := g.maxRows
	if limit == 0 {
		limit = maxGroupRows
	}
	rows := make([]int, len(g.r.layout.Tables))
	n := 0
	for ; n < len(g.queue); n++ {
		b := g.queue[n].b
		fits := true
		for i := range rows {
			fits = fits && rows[i]+len(b.rows[i]) <= limit
		}
		if n > 0 && !fits {
			break
		}
		for i := range rows {
			rows[i] += len(b.rows[i])
		}
	}
	ms := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	return ms
}

// handOff lets the first queued member lead the next group (g.mu held).
func (g *grouper) handOff() {
	if len(g.queue) > 0 {
		g.queue[0].lead <- struct{}{}
	} else {
		g.busy = false
	}
}

// run persists a group under a context that ends when every member's
// has, then starts the next.
func (g *grouper) run(ms []*member) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ms[0].ctx))
	var left atomic.Int32
	left.Store(int32(len(ms)))
	stops := make([]func() bool, len(ms))
	for i, m := range ms {
		stops[i] = context.AfterFunc(m.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	g.r.metrics.groupBatches.WithLabelValues(g.r.proj.Name).Observe(float64(len(ms)))
	persistGroup(ctx, g.r, ms)
	for i, m := range ms {
		stops[i]()
		close(m.done)
	}
	cancel()
	g.mu.Lock()
	g.handOff()
	g.mu.Unlock()
}

// persistGroup inserts every table's rows of the members' batches: first
// every row is encoded (a row the driver refuses parks its aggregate in
// its batch before anything is sent), then the tables other than the
// State table are sent concurrently, with the checkpoints deferred from
// the members' last batches, then the State table for the members whose
// first round succeeded (last, see DESIGN.md). Each member gets its
// error and whether the State table covers its batch.
func persistGroup(ctx context.Context, r *Runner, ms []*member) {
	l := r.layout
	for _, m := range ms {
		m.c.purgeRejected(m.b)
	}
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
		prepared = make([]driver.Batch, len(l.Tables))
		cancels = make([]context.CancelFunc, len(l.Tables))
		var rej *rowError
		var who *member
		for i := range l.Tables {
			parts := withRows(ms, i)
			if len(parts) == 0 {
				continue
			}
			ictx, cancel := context.WithTimeout(ctx, r.cfg.InsertTimeout)
			cancels[i] = cancel
			pb, m, err := prepareGroup(ictx, r, i, parts)
			if errors.As(err, &rej) {
				who = m
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
		who.c.rejectIn(who.b, rej.row.key, rej.row.off, rej)
	}
	defer release()

	// Every row is encoded: the records were kept only to park a refused
	// aggregate's events. Let them go while the batch is sent.
	parts := make([][]*member, len(l.Tables)) // per table, the members with rows
	for i := range l.Tables {
		parts[i] = withRows(ms, i)
	}
	state := l.State()
	for _, m := range ms {
		m.b.recs = nil
		// (A parked aggregate's replay, dlq.go, re-applies earlier offsets:
		// its batch covers nothing deferred.)
		if state >= 0 && m.b.last > m.c.pending {
			for _, row := range m.b.rows[state] {
				m.covered = m.covered || row.off == m.b.last
			}
		}
	}
	var wg sync.WaitGroup
	ckErrs := make([]error, len(ms))
	for j, m := range ms {
		if ck := m.c.pending; ck >= 0 && !m.covered {
			// The previous batch's checkpoints join the first round.
			wg.Add(1)
			go func() {
				defer wg.Done()
				ckErrs[j] = m.c.writeCheckpoints(ctx, ck)
			}()
		}
	}
	tblErrs := make([]error, len(l.Tables))
	for i := range l.Tables {
		if i == state || len(parts[i]) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tblErrs[i] = sendGroup(ctx, r, i, parts[i], prepared[i])
		}()
	}
	wg.Wait()
	var last []*member // the State table's members
	for j, m := range ms {
		errs := []error{ckErrs[j]}
		for i := range l.Tables {
			if i != state && len(m.b.rows[i]) > 0 {
				errs = append(errs, tblErrs[i])
			}
		}
		if m.err = errors.Join(errs...); m.err != nil {
			m.covered = false
			continue
		}
		m.ok = true
		if state >= 0 && len(m.b.rows[state]) > 0 {
			last = append(last, m)
		}
	}
	if len(last) == 0 {
		return
	}
	pb := prepared[state]
	if len(last) < len(parts[state]) {
		// A member failed its first round: its State rows must not land.
		pb = nil // sendGroup prepares the survivors' rows
	}
	err := sendGroup(ctx, r, state, last, pb)
	for _, m := range last {
		if m.err = err; err != nil {
			m.covered = false
		}
	}
}

// withRows is the members with rows for table i.
func withRows(ms []*member, i int) []*member {
	var out []*member
	for _, m := range ms {
		if len(m.b.rows[i]) > 0 {
			out = append(out, m)
		}
	}
	return out
}

// prepareGroup encodes the members' rows of table i into one clickhouse-go
// batch without sending it. The insert carries a deduplication token
// naming exactly these rows, so every retry of them is the same insert to
// ClickHouse, and every member's fence tag. A row the driver refuses is
// returned as a *rowError with its member.
func prepareGroup(ctx context.Context, r *Runner, i int, ms []*member) (driver.Batch, *member, error) {
	pt := r.layout.Tables[i]
	tags := make([]string, len(ms))
	tokens := make([]string, len(ms))
	for j, m := range ms {
		tags[j] = fenceComment(r.proj.Name, r.layout.Generation, m.c.k, m.c.claim.epoch)
		tokens[j] = dedupToken(r.proj.Name, r.layout.Generation, pt.Logical, m.c.k, m.b.rows[i])
	}
	token := tokens[0]
	if len(ms) > 1 {
		h := fnv.New64a()
		var buf [8]byte
		for _, t := range tokens {
			binary.LittleEndian.PutUint64(buf[:], uint64(len(t)))
			h.Write(buf[:])
			h.Write([]byte(t))
		}
		token = fmt.Sprintf("reel/%s/g%d/%s/group/%d/%x", r.proj.Name, r.layout.Generation, pt.Logical, len(ms), h.Sum64())
	}
	ctx = taggedCtx(ctx, strings.Join(tags, fenceSeparator), clickhouse.Settings{"insert_deduplication_token": token})
	// The layout knows the inbox's columns: no DESCRIBE TABLE per batch.
	ctx = clickhouse.Context(ctx, clickhouse.WithColumnNamesAndTypes(pt.InsertColumns))
	pb, err := r.conn.PrepareBatch(ctx, pt.Insert)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range ms {
		for _, row := range m.b.rows[i] {
			if err := pb.Append(row.values...); err != nil {
				_ = pb.Close()
				return nil, m, &rowError{row: row, err: err}
			}
		}
	}
	return pb, nil, nil
}

// sendGroup sends a prepared batch of table i, then retries transient
// failures with the runner's retry policy until the rows land, a
// permanent error (returned as a *chclient.PermanentError) or ctx ends. A
// retry first checks whether the previous attempt landed after all (every
// member's last row is present), so an ambiguous failure never
// duplicates rows.
func sendGroup(ctx context.Context, r *Runner, i int, ms []*member, pb driver.Batch) error {
	pt := r.layout.Tables[i]
	rows := 0
	for _, m := range ms {
		rows += len(m.b.rows[i])
	}
	for attempt := 0; ; attempt++ {
		var err error
		t0 := time.Now()
		if pb != nil {
			err = pb.Send()
			pb = nil
		} else if pb, _, err = prepareGroup(ctx, r, i, ms); err == nil {
			err = pb.Send()
			pb = nil
		}
		if err == nil {
			r.metrics.insertSeconds.WithLabelValues(r.proj.Name, pt.Logical).Observe(time.Since(t0).Seconds())
			r.metrics.rows.WithLabelValues(r.proj.Name, pt.Logical).Add(float64(rows))
			r.setHealthy(true, nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		retry, err := r.retry.Observe("insert", err)
		if !retry {
			return fmt.Errorf("insert into %s: %w", pt.Name, err)
		}
		r.metrics.retries.WithLabelValues(r.proj.Name).Inc()
		r.setHealthy(false, fmt.Errorf("insert into %s: %w", pt.Name, err))
		r.log.Warn("insert failed; retrying", "table", pt.Name, "rows", rows, "partitions", len(ms), "attempt", attempt+1, "err", err)
		if r.retry.Sleep(ctx, attempt) != nil {
			return ctx.Err()
		}
		if landedAll(ctx, ms, i) {
			r.log.Info("previous insert attempt had landed", "table", pt.Name)
			r.setHealthy(true, nil)
			return nil
		}
	}
}

// landedAll reports whether every member's rows of table i are present.
func landedAll(ctx context.Context, ms []*member, i int) bool {
	for _, m := range ms {
		ok, err := m.c.landed(ctx, m.c.layout.Tables[i], m.b.rows[i])
		if err != nil || !ok {
			return false
		}
	}
	return true
}
