package producers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/schemas"
)

// Position is where Kafka stored an event. The projector's read-your-writes
// waits until a projection has applied it.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

func (p Position) String() string { return fmt.Sprintf("%s/%d@%d", p.Topic, p.Partition, p.Offset) }

// ErrPublish marks a failure after validation, while Kafka stored the
// events; see PublishError for which ones.
var ErrPublish = errors.New("publish failed")

// PublishError reports per event what Kafka did with a batch that was
// valid but not fully stored.
type PublishError struct {
	Positions []Position // zero Position where Errs[i] != nil
	Errs      []error    // nil where the event was stored
}

func (e *PublishError) Error() string {
	var b strings.Builder
	n := 0
	for i, err := range e.Errs {
		if err != nil {
			if n < 3 {
				fmt.Fprintf(&b, "; event %d: %v", i, err)
			}
			n++
		}
	}
	return fmt.Sprintf("%v: %d of %d events not stored%s", ErrPublish, n, len(e.Errs), b.String())
}

func (e *PublishError) Unwrap() []error {
	out := []error{ErrPublish}
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// Producer publishes catalog events to Kafka. Safe for concurrent use.
type Producer struct {
	cl    *kgo.Client
	codec *schemas.Codec
	own   bool
}

// New wraps a client the caller owns (and closes). It must produce with
// acks=all and idempotence (kgo's defaults); anything weaker is refused
// because a retry could then duplicate or reorder an aggregate's events.
func New(cl *kgo.Client, codec *schemas.Codec) (*Producer, error) {
	if codec == nil {
		return nil, errors.New("producers: nil codec")
	}
	if acks, _ := cl.OptValue(kgo.RequiredAcks).(kgo.Acks); acks != kgo.AllISRAcks() {
		return nil, errors.New("producers: the client must use acks=all (kgo.RequiredAcks(kgo.AllISRAcks()), the default)")
	}
	if off, _ := cl.OptValue(kgo.DisableIdempotentWrite).(bool); off {
		return nil, errors.New("producers: idempotent writes must stay on: without them a retry can duplicate or reorder an aggregate's events")
	}
	return &Producer{cl: cl, codec: codec}, nil
}

// Open creates a producer with its own client: the given options (seed
// brokers at least) plus acks=all, idempotent writes and key hashing with
// murmur2 as Kafka's Java producer does, so every client puts an aggregate
// in the same partition. Close releases it.
func Open(codec *schemas.Codec, opts ...kgo.Opt) (*Producer, error) {
	base := []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // nil hasher: murmur2, Java compatible
		kgo.ProducerLinger(0),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("producers: %w", err)
	}
	p, err := New(cl, codec)
	if err != nil {
		cl.Close()
		return nil, err
	}
	p.own = true
	return p, nil
}

// Client is the underlying Kafka client.
func (p *Producer) Client() *kgo.Client { return p.cl }

// Codec is the codec events are encoded with.
func (p *Producer) Codec() *schemas.Codec { return p.codec }

// Close flushes and, when Open created the client, closes it.
func (p *Producer) Close() {
	if p.own {
		p.cl.Close()
	}
}

// Encode validates and encodes events; it is the first half of Publish,
// exported for callers that produce records themselves (transactions).
func (p *Producer) Encode(ctx context.Context, events ...schemas.Event) ([]*kgo.Record, error) {
	recs := make([]*kgo.Record, len(events))
	for i, ev := range events {
		r, err := p.codec.Encode(ctx, ev)
		if err != nil {
			if len(events) > 1 {
				return nil, fmt.Errorf("event %d of %d: %w", i+1, len(events), err)
			}
			return nil, err
		}
		recs[i] = r
	}
	return recs, nil
}

// Publish validates every event first — unknown type, empty aggregate ID,
// payload not matching its schema (errors wrapping schemas.ErrUnknownEventType,
// schemas.ErrEmptyAggregateID, schemas.ErrSchemaMismatch) — and sends
// nothing if one is invalid. Then it produces them in order and waits for
// Kafka. Events of one aggregate keep their order. A broker failure after
// that returns a *PublishError saying which events were stored; Kafka has no
// multi-partition atomicity outside transactions (see Versioned).
func (p *Producer) Publish(ctx context.Context, events ...schemas.Event) ([]Position, error) {
	recs, err := p.Encode(ctx, events...)
	if err != nil {
		return nil, err
	}
	res := p.cl.ProduceSync(ctx, recs...)
	pos := make([]Position, len(recs))
	var perr *PublishError
	for i, r := range res {
		if r.Err != nil {
			if perr == nil {
				perr = &PublishError{Positions: pos, Errs: make([]error, len(recs))}
			}
			perr.Errs[i] = r.Err
			continue
		}
		pos[i] = Position{Topic: r.Record.Topic, Partition: r.Record.Partition, Offset: r.Record.Offset}
	}
	if perr != nil {
		return pos, perr
	}
	return pos, nil
}

// PublishAsync validates ev, queues it and returns; done is called once,
// with the position or the error (a validation error synchronously, before
// PublishAsync returns).
func (p *Producer) PublishAsync(ctx context.Context, ev schemas.Event, done func(Position, error)) {
	r, err := p.codec.Encode(ctx, ev)
	if err != nil {
		done(Position{}, err)
		return
	}
	p.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		if err != nil {
			done(Position{}, err)
			return
		}
		done(Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}, nil)
	})
}

// Flush waits until every queued event is stored or failed.
func (p *Producer) Flush(ctx context.Context) error { return p.cl.Flush(ctx) }
