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

// BenchWorker drives one partition's applier without Kafka or ClickHouse,
// for benchmarks in projectors_test (which may import the demo
// projections; this package may not): records go through decode → Apply
// → row batching exactly as in the runtime, and a full batch goes to a
// sink that drops it.
type BenchWorker struct{ a *applier }

// discard is a sink that drops batches.
type discard struct{}

func (discard) put(context.Context, *batch) error { return nil }
func (discard) sync(context.Context) error        { return nil }
func (discard) settle(context.Context) error      { return nil }
func (discard) waiting() bool                     { return false }
func (discard) rejects() []reject                 { return nil }

// NewBenchWorker returns an applier of generation 1, partition 0 of p's
// first topic, with nothing in ClickHouse (so state misses mean "new").
func NewBenchWorker(p *projection.Projection, dec Decoder, batch int) *BenchWorker {
	c := defaultCfg()
	c.BatchEvents = batch
	r := &Runner{proj: p, layout: store.NewLayout(p, 1), dec: dec, cfg: c, log: slog.New(slog.DiscardHandler),
		metrics: NewMetrics(nil), ctx: context.Background(), workers: map[tp]*worker{}}
	ck := make([]int64, len(r.layout.Tables))
	for i := range ck {
		ck[i] = -1
	}
	k := tp{Topic: p.Topics[0], Partition: 0}
	return &BenchWorker{a: newApplier(&partition{r: r, proj: p, layout: r.layout, k: k, claim: claim{k: k}, log: r.log}, discard{}, ck, nil)}
}

// Process applies one record as the worker does. A full batch is dropped
// without moving the positions, so that the records can be applied again.
func (b *BenchWorker) Process(ctx context.Context, rec *kgo.Record) error {
	err := b.a.applyRecord(ctx, rec, b.a.ckpt, false)
	if b.a.b.events >= b.a.r.cfg.BatchEvents {
		for i, rows := range b.a.b.rows {
			b.a.prev[i] = len(rows)
		}
		b.a.resetBatch()
	}
	return err
}

// Apply runs only the projection's Apply with a Tx as the applier builds
// it (state from the applier's cache), keeping the new state.
func (b *BenchWorker) Apply(ctx context.Context, off int64, ev schemas.Event) error {
	tx := &eventTx{a: b.a, pos: projection.Position{Topic: b.a.k.Topic, Offset: off}, key: ev.AggregateID, ts: ev.OccurredAt}
	if err := b.a.proj.Apply(ctx, tx, ev); err != nil {
		return err
	}
	if tx.state != nil {
		b.a.cache.put(tx.key, tx.state)
	}
	return nil
}

// AddRow queues one row of the first physical table, as applyRecord does
// for every row Apply emits.
func (b *BenchWorker) AddRow(off int64, key string, ts time.Time, user []any) {
	b.a.sys[2], b.a.sys[3] = uint64(off), ts
	b.a.addRow(0, off, key, user, b.a.ckpt)
	if len(b.a.b.rows[0]) >= b.a.r.cfg.BatchEvents {
		b.a.resetBatch()
	}
}
