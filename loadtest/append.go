package loadtest

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/reel-dev/reel/examples/demo/projectors/shop"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// appendName is the append-only projection of the like-for-like peer
// comparison.
const appendName = "orders_append"

// appendProjection is the work the peer does, as a Reel projection: every
// event of the run's shop topic becomes one row (order_id and Reel's
// position columns) of one MergeTree table ordered like the peer's
// (order_id, _offset). No State table, no history, no views.
func appendProjection(prefix string) *projection.Projection {
	return &projection.Projection{
		Name:        appendName,
		Version:     1,
		Description: "load test: the shop topic copied row for row (the Kafka engine peer's work)",
		Topics:      []string{prefix + shop.Topic},
		Tables: []projection.Table{{Name: appendName, Columns: []projection.Column{{Name: "order_id", Type: "String"}},
			OrderBy: "order_id, _offset"}},
		Apply: func(_ context.Context, tx projection.Tx, ev schemas.Event) error {
			return tx.Emit(appendName, ev.AggregateID)
		},
	}
}

// topicEvents is the number of records in the run's topic (the sum of
// its partitions' end offsets; the producer is not transactional).
func (r *run) topicEvents(ctx context.Context, topic string) (int64, error) {
	ends, err := kadm.NewClient(r.kcl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	if err := ends.Error(); err != nil {
		return 0, err
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total, nil
}

// appendOnly runs the append-only projection over the whole shop topic in
// a fresh projector process, from its first durable batch to the end of
// the topic: the same work the peer then does on the same topic.
func (r *run) appendOnly(ctx context.Context) error {
	r.setPhase("append-only")
	total, err := r.topicEvents(ctx, r.prefix+shop.Topic)
	if err != nil {
		return err
	}
	if err := r.startChildOf(ctx, []string{appendName}, 1, true); err != nil {
		return err
	}
	defer r.stopChild()
	d, n, err := r.timeToApply(ctx, total, 10*time.Minute, nil)
	if err != nil {
		return err
	}
	r.res.AppendOnly.Reel = rate(n, d)
	r.res.AppendOnly.Events = total
	r.progress("append-only: %d events in %.2fs = %.0f/s", total, d.Seconds(), r.res.AppendOnly.Reel.PerSec)
	return nil
}

// timeToApply polls the projector until it has applied total events and
// returns the time from its first durable batch to the end and the events
// applied in that time. With onPoll set, it is called at every poll with
// the time since the call and the events applied.
func (r *run) timeToApply(ctx context.Context, total int64, limit time.Duration, onPoll func(time.Duration, int64)) (time.Duration, int64, error) {
	t0 := time.Now()
	var first time.Time
	var firstN int64
	for {
		if st, err := r.child.stats(ctx); err == nil {
			now := time.Now()
			if onPoll != nil {
				onPoll(now.Sub(t0), st.Applied)
			}
			if st.Applied > 0 && first.IsZero() {
				first, firstN = now, st.Applied
			}
			if st.Applied >= total {
				if first.Equal(now) { // all of it in the first batch
					return now.Sub(t0), total, nil
				}
				return now.Sub(first), total - firstN, nil
			}
		}
		if time.Since(t0) > limit {
			return 0, 0, fmt.Errorf("the projector did not apply %d events within %s", total, limit)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
