package projectors

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// BenchWorker drives one partition worker without Kafka or ClickHouse,
// for benchmarks in projectors_test (which may import the demo
// projections; this package may not): records go through decode → Apply
// → row batching exactly as in the runtime, and a full batch is dropped
// instead of flushed.
type BenchWorker struct{ w *worker }

// NewBenchWorker returns a worker of generation 1, partition 0 of p's
// first topic, with nothing in ClickHouse (so state misses mean "new").
func NewBenchWorker(p *projection.Projection, dec Decoder, batch int) *BenchWorker {
	c := defaultCfg()
	c.batchEvents = batch
	r := &Runner{proj: p, layout: store.NewLayout(p, 1), dec: dec, cfg: c, log: slog.New(slog.DiscardHandler),
		metrics: NewMetrics(nil), ctx: context.Background(), workers: map[tp]*worker{}}
	ck := make([]int64, len(r.layout.Tables))
	for i := range ck {
		ck[i] = -1
	}
	return &BenchWorker{w: newWorker(r, claim{k: tp{Topic: p.Topics[0], Partition: 0}}, ck, nil)}
}

// Process applies one record as the worker's poll loop does.
func (b *BenchWorker) Process(ctx context.Context, rec *kgo.Record) error {
	err := b.w.applyRecord(ctx, rec, b.w.ckpt, false)
	if b.w.b.events >= b.w.r.cfg.batchEvents {
		b.w.resetBatch()
	}
	return err
}

// Apply runs only the projection's Apply with a Tx as the worker builds it
// (state from the worker's cache), keeping the new state.
func (b *BenchWorker) Apply(ctx context.Context, off int64, ev schemas.Event) error {
	tx := &eventTx{w: b.w, pos: projection.Position{Topic: b.w.k.Topic, Partition: 0, Offset: off}, key: ev.AggregateID, ts: ev.OccurredAt}
	if err := b.w.proj.Apply(ctx, tx, ev); err != nil {
		return err
	}
	if tx.state != nil {
		b.w.cache[tx.key] = tx.state
	}
	return nil
}

// AddRow queues one row of the first physical table, as applyRecord does
// for every row Apply emits.
func (b *BenchWorker) AddRow(off int64, key string, ts time.Time, user []any) {
	b.w.addRow(0, off, key, ts, user, b.w.ckpt)
	if len(b.w.b.rows[0]) >= b.w.r.cfg.batchEvents {
		b.w.resetBatch()
	}
}

// Batched reports the rows queued in the current batch.
func (b *BenchWorker) Batched() int {
	n := 0
	for _, rs := range b.w.b.rows {
		n += len(rs)
	}
	return n
}
