package loadtest

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/producers"
)

// producer drives the generator into Kafka at a rate.
type producer struct {
	p        *producers.Producer
	g        *gen
	prefix   string
	produced atomic.Int64 // acknowledged by Kafka
	failed   atomic.Int64
}

// run produces at rate events/s (≤ 0: as fast as possible) until d
// passes, max events are sent (max > 0) or ctx ends. With pr set, about
// 50 events/s of those the orders projection writes are stamped as
// freshness samples. It returns the events acknowledged and the time
// from the first send to the last acknowledgement.
func (pd *producer) run(ctx context.Context, rate float64, d time.Duration, max int64, pr *prober) (int64, time.Duration, error) {
	start := time.Now()
	base := pd.produced.Load()
	deadline := start.Add(d)
	var sent int64
	var lastSample time.Time
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil && time.Now().Before(deadline) && (max <= 0 || sent < max) {
		n := int64(1 << 30)
		if rate > 0 {
			<-tick.C
			n = int64(rate*time.Since(start).Seconds()) - sent
		}
		for ; n > 0 && (max <= 0 || sent < max); n-- {
			ev, emits := pd.g.next()
			recs, err := pd.p.Encode(ctx, ev)
			if err != nil {
				return 0, 0, err
			}
			rec := recs[0]
			rec.Topic = pd.prefix + rec.Topic
			t0 := time.Now()
			sample := pr != nil && emits && t0.Sub(lastSample) >= 20*time.Millisecond
			if sample {
				lastSample = t0
			}
			id, occurred := ev.AggregateID, ev.OccurredAt
			pd.p.Client().Produce(ctx, rec, func(r *kgo.Record, err error) {
				if err != nil {
					pd.failed.Add(1)
					return
				}
				pd.produced.Add(1)
				if sample {
					pr.add(probeSample{id: id, stamp: occurred, sent: t0})
				}
			})
			sent++
			if rate <= 0 && sent%1024 == 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
				break
			}
		}
	}
	if err := pd.p.Flush(ctx); err != nil {
		return 0, 0, err
	}
	return pd.produced.Load() - base, time.Since(start), nil
}

// prober measures freshness: produce → visible in the orders_current view.
// A sample is an event the orders projection turns into a new current row
// whose updated_at is the event's stamp (the generator keeps the stamps of
// an order strictly increasing). Every 20ms one query against the stable
// view asks for the updated_at of every pending sample's order; a sample
// is visible once updated_at ≥ its stamp, and its freshness is the time
// from just before the Produce call to the answer of the first query that
// saw it (an upper bound, at most one probe round late).
type prober struct {
	conn driver.Conn
	mu   sync.Mutex
	pend []probeSample
	lat  []float64 // ms
	qlat []float64 // probe query latency, ms
	errs int
}

type probeSample struct {
	id    string
	stamp time.Time
	sent  time.Time
}

func (p *prober) add(s probeSample) {
	p.mu.Lock()
	p.pend = append(p.pend, s)
	p.mu.Unlock()
}

// probeEvery is the prober's period: ten queries a second, as a live
// dashboard might poll. At 50 a second (the period until 2026-11-30) its
// FINAL reads of the view competed for the two cores with the projector
// and the inserts it measures.
const probeEvery = 100 * time.Millisecond

func (p *prober) run(ctx context.Context) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		batch := append([]probeSample(nil), p.pend[:min(len(p.pend), 1000)]...)
		p.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		ids := make([]string, len(batch))
		for i, s := range batch {
			ids[i] = s.id
		}
		q0 := time.Now()
		rows, err := p.conn.Query(ctx, "SELECT order_id, max(updated_at) FROM orders_current WHERE order_id IN (?) GROUP BY order_id", ids)
		if err != nil {
			p.errs++
			continue
		}
		seen := map[string]time.Time{}
		for rows.Next() {
			var id string
			var ts time.Time
			if rows.Scan(&id, &ts) == nil {
				seen[id] = ts
			}
		}
		rows.Close()
		now := time.Now()
		p.mu.Lock()
		p.qlat = append(p.qlat, float64(now.Sub(q0).Microseconds())/1000)
		visible := map[int]bool{}
		for i, s := range batch {
			if ts, ok := seen[s.id]; ok && !ts.Before(s.stamp) {
				visible[i] = true
				p.lat = append(p.lat, float64(now.Sub(s.sent).Microseconds())/1000)
			}
		}
		// batch is a prefix of pend: keep the invisible ones and the rest.
		kept := make([]probeSample, 0, len(p.pend))
		for i, s := range batch {
			if !visible[i] {
				kept = append(kept, s)
			}
		}
		p.pend = append(kept, p.pend[len(batch):]...)
		p.mu.Unlock()
	}
}

// take returns and resets the latencies measured so far, and how many
// samples are still pending.
func (p *prober) take() (lat, qlat []float64, pending int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lat, qlat, pending = p.lat, p.qlat, len(p.pend)
	p.lat, p.qlat, p.pend = nil, nil, nil
	return
}

func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}
