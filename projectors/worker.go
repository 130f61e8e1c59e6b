package projectors

import (
	"context"
	"log/slog"
	"time"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// Park reasons, stored in the parked table's reason column.
const (
	ReasonDecode    = "decode"    // bytes/schema/headers could not be decoded
	ReasonApply     = "apply"     // the projection's Apply returned an error
	ReasonInsert    = "insert"    // ClickHouse rejected a row the event produced
	ReasonAggregate = "aggregate" // an earlier event of the aggregate is parked
)

// partition is what every stage of one partition's pipeline knows of it:
// the runner, the generation's layout and this member's claim (every write
// carries its epoch).
type partition struct {
	r      *Runner
	proj   *projection.Projection
	layout *store.Layout
	k      tp
	claim  claim
	log    *slog.Logger
}

// worker projects one topic partition, in order, as a pipeline of three
// stages: the queue (records handed over by the poll loop; pauses fetching
// past its byte bound), the applier (decode, Apply, state cache, parking,
// batch building) and the committer (the applier's sink: encode, insert,
// checkpoints, side effects). The worker's goroutine (run) drives the
// queue and the applier, and operator requests (dlq.go) between batches;
// the committer runs on it too, or on a goroutine of its own with
// Pipeline(true).
type worker struct {
	*partition
	q *queue
	a *applier
	c *committer

	ctl     chan func(context.Context) // operator requests (dlq.go), run between batches
	stop    chan struct{}              // close: finish the batch, then exit
	abandon context.CancelFunc
	ctx     context.Context // canceled: drop the batch and exit
	done    chan struct{}
}

func newWorker(r *Runner, c claim, ckpt []int64, parked map[string]int64) *worker {
	k := c.k
	p := &partition{r: r, proj: r.proj, layout: r.layout, k: k, claim: c,
		log: r.log.With("topic", k.Topic, "partition", k.Partition, "epoch", c.epoch)}
	w := &worker{
		partition: p,
		ctl:       make(chan func(context.Context)),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	w.ctx, w.abandon = context.WithCancel(r.ctx)
	w.q = newQueue(r.waiting, r.cfg.MaxPending, r.metrics.pending.WithLabelValues(r.proj.Name), func() {
		r.cl.PauseFetchPartitions(map[string][]int32{k.Topic: {k.Partition}})
		r.metrics.paused.WithLabelValues(r.proj.Name).Inc()
	}, func() {
		r.cl.ResumeFetchPartitions(map[string][]int32{k.Topic: {k.Partition}})
	})
	w.c = newCommitter(p, r.cfg.Pipeline, w.ctx, w.abandon)
	w.a = newApplier(p, w.c, ckpt, parked)
	return w
}

// startOffset is where consumption resumes: one past the lowest position
// any table holds (tables ahead of it drop the rows they already have).
func (w *worker) startOffset() int64 { return minOf(w.a.ckpt) + 1 }

// run applies queued records until stop (graceful: flush) or abandon.
func (w *worker) run() {
	ctx := w.ctx
	defer close(w.done)
	defer func() {
		// No batch of this worker may reach ClickHouse after done: the next
		// owner of the partition reads positions once it is assigned.
		w.abandon()
		w.c.stop()
		w.q.drop()
	}()
	tick := time.NewTicker(w.r.cfg.FlushInterval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			w.finish(ctx)
			return
		case fn := <-w.ctl:
			fn(ctx)
		case <-w.q.ready:
			chunks, since := w.q.take()
			w.a.arrived = since
			w.a.prefetchChunks(ctx, chunks)
			for i, recs := range chunks {
				if w.a.process(ctx, recs) != nil || ctx.Err() != nil {
					return
				}
				chunks[i] = nil // the batch holds what it needs of them
				select {
				case <-w.stop:
					// Leave the rest to the next owner.
					w.finish(ctx)
					return
				default:
				}
			}
			// A batch of records that waited behind the last one may be
			// old enough already: end it now, not at the next tick.
			if w.a.tick(ctx, w.q.backlog()) != nil {
				return
			}
		case <-tick.C:
			if w.a.tick(ctx, w.q.backlog()) != nil {
				return
			}
		}
	}
}

// finish makes the batch in flight durable. Records handed over but not
// yet applied are left for the next owner, which re-reads them from the
// positions in ClickHouse: shutdown stays quick with big fetches.
func (w *worker) finish(ctx context.Context) {
	if err := w.a.flush(ctx); err != nil && ctx.Err() == nil {
		w.log.Warn("final flush abandoned", "err", err)
	}
}
