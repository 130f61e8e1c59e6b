package producers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/schemas"
)

var (
	// ErrConcurrencyConflict: the aggregate is not at the expected version;
	// reload it and decide again.
	ErrConcurrencyConflict = errors.New("concurrency conflict")
	// ErrFenced: another Versioned writer with the same transactional ID
	// started, so this one may hold stale versions and must stop. Errors
	// carrying it also match ErrConcurrencyConflict.
	ErrFenced = errors.New("writer fenced by a newer instance")
)

// AnyVersion as the expected version skips the check.
const AnyVersion int64 = -1

// VersionedConfig configures OpenVersioned.
type VersionedConfig struct {
	Codec *schemas.Codec // required
	Topic string         // required: the one topic this writer owns
	// TransactionalID fences older writers of the topic. Default
	// "reel-writer-<topic>".
	TransactionalID string
	// Fold, if set, sees every event of the topic in order: the history on
	// open, then every appended event. Command handlers rebuild their
	// aggregate state with it. Called under the aggregate's lock.
	Fold func(ev schemas.Event)
	// Kafka options: seed brokers at least; TLS, SASL as needed.
	Kafka []kgo.Opt
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Versioned is the single writer of one topic that enforces expected
// aggregate versions. See the package documentation for the guarantee.
type Versioned struct {
	cfg    VersionedConfig
	cl     *kgo.Client
	mu     sync.Mutex // guards aggs and fenced
	aggs   map[string]*aggregate
	fenced error
	txMu   sync.Mutex // one transaction at a time (kgo's rule)
}

type aggregate struct {
	mu      sync.Mutex
	version int64
}

// OpenVersioned starts the writer: it takes over the transactional ID
// (fencing any older instance and aborting its open transaction), then reads
// the topic (read_committed) up to its end to rebuild every aggregate's
// version and the Fold state. Only then does it accept appends.
func OpenVersioned(ctx context.Context, cfg VersionedConfig) (*Versioned, error) {
	if cfg.Codec == nil || cfg.Topic == "" {
		return nil, errors.New("producers: VersionedConfig needs Codec and Topic")
	}
	if cfg.TransactionalID == "" {
		cfg.TransactionalID = "reel-writer-" + cfg.Topic
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts := append([]kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.TransactionTimeout(30 * time.Second),
		kgo.ProducerLinger(0),
	}, cfg.Kafka...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("producers: %w", err)
	}
	v := &Versioned{cfg: cfg, cl: cl, aggs: map[string]*aggregate{}}
	if _, _, err := cl.ProducerID(ctx); err != nil { // fences the previous instance
		cl.Close()
		return nil, fmt.Errorf("producers: init transactional producer %s: %w", cfg.TransactionalID, err)
	}
	n, err := v.rebuild(ctx)
	if err != nil {
		cl.Close()
		return nil, err
	}
	cfg.Logger.Info("versioned writer ready", "topic", cfg.Topic, "transactional_id", cfg.TransactionalID, "events", n, "aggregates", len(v.aggs))
	return v, nil
}

// rebuild reads the topic from the start to the end offsets taken after
// fencing: nothing can be appended behind our back from then on.
func (v *Versioned) rebuild(ctx context.Context) (int, error) {
	adm := kadm.NewClient(v.cl)
	ends, err := adm.ListEndOffsets(ctx, v.cfg.Topic)
	if err != nil {
		return 0, fmt.Errorf("producers: end offsets of %s: %w", v.cfg.Topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if err := ends.Error(); err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return 0, fmt.Errorf("producers: end offsets of %s: %w", v.cfg.Topic, err)
	}
	if len(want) == 0 {
		return 0, nil
	}
	cons, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ConsumeTopics(v.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, v.cfg.Kafka...)...)
	if err != nil {
		return 0, fmt.Errorf("producers: %w", err)
	}
	defer cons.Close()
	n := 0
	for len(want) > 0 {
		// Commit markers take offsets too, so a partition whose log ends in a
		// marker never shows a record at end-1. After fencing nothing new can
		// arrive, so a quiet poll means the rest are markers (or aborted data).
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cons.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("producers: rebuild %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return n, ferr
		}
		if fs.NumRecords() == 0 {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			n++
			a := v.agg(string(r.Key))
			a.version++
			if v.cfg.Fold != nil {
				ev, err := v.cfg.Codec.Decode(ctx, r)
				if err != nil {
					v.cfg.Logger.Warn("versioned writer: undecodable event counted but not folded", "err", err)
				} else {
					v.cfg.Fold(ev)
				}
			}
			if r.Offset >= end-1 {
				delete(want, r.Partition)
			}
		})
	}
	return n, nil
}

func (v *Versioned) agg(id string) *aggregate {
	v.mu.Lock()
	defer v.mu.Unlock()
	a := v.aggs[id]
	if a == nil {
		a = &aggregate{}
		v.aggs[id] = a
	}
	return a
}

// Version is the number of events of the aggregate on the topic (0: none).
func (v *Versioned) Version(aggregateID string) int64 {
	a := v.agg(aggregateID)
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.version
}

// Update runs decide with the aggregate's current version under its lock and
// appends what it returns at that version: the usual command-handler shape,
// where decide reads state kept by Fold. No events: nothing is appended.
func (v *Versioned) Update(ctx context.Context, aggregateID string, decide func(version int64) ([]schemas.Event, error)) ([]Position, error) {
	a := v.agg(aggregateID)
	a.mu.Lock()
	defer a.mu.Unlock()
	events, err := decide(a.version)
	if err != nil || len(events) == 0 {
		return nil, err
	}
	return v.appendLocked(ctx, a, aggregateID, a.version, events)
}

// Append stores events of one aggregate atomically (one Kafka transaction)
// if the aggregate is at expected (AnyVersion: no check). A stale expected
// version gets ErrConcurrencyConflict and nothing is written.
func (v *Versioned) Append(ctx context.Context, aggregateID string, expected int64, events ...schemas.Event) ([]Position, error) {
	a := v.agg(aggregateID)
	a.mu.Lock()
	defer a.mu.Unlock()
	return v.appendLocked(ctx, a, aggregateID, expected, events)
}

func (v *Versioned) appendLocked(ctx context.Context, a *aggregate, aggregateID string, expected int64, events []schemas.Event) ([]Position, error) {
	v.mu.Lock()
	fenced := v.fenced
	v.mu.Unlock()
	if fenced != nil {
		return nil, fenced
	}
	if expected != AnyVersion && expected != a.version {
		return nil, fmt.Errorf("%w: aggregate %s is at version %d, the command expected %d", ErrConcurrencyConflict, aggregateID, a.version, expected)
	}
	recs := make([]*kgo.Record, len(events))
	prepared := make([]schemas.Event, len(events))
	for i, ev := range events {
		ev, _, err := v.cfg.Codec.Prepare(ev)
		if err == nil && ev.AggregateID != aggregateID {
			err = fmt.Errorf("%w: event %d is for aggregate %q, the append for %q", schemas.ErrSchemaMismatch, i+1, ev.AggregateID, aggregateID)
		}
		var r *kgo.Record
		if err == nil {
			r, err = v.cfg.Codec.Encode(ctx, ev)
		}
		if err == nil && r.Topic != v.cfg.Topic {
			err = fmt.Errorf("%w: %s belongs on %s, this writer owns %s", schemas.ErrUnknownEventType, ev.Type, r.Topic, v.cfg.Topic)
		}
		if err != nil {
			return nil, err
		}
		recs[i], prepared[i] = r, ev
	}
	pos, err := v.transact(ctx, recs)
	if err != nil {
		return nil, err
	}
	a.version += int64(len(events))
	if v.cfg.Fold != nil {
		for _, ev := range prepared {
			v.cfg.Fold(ev)
		}
	}
	return pos, nil
}

func (v *Versioned) transact(ctx context.Context, recs []*kgo.Record) ([]Position, error) {
	v.txMu.Lock()
	defer v.txMu.Unlock()
	if err := v.cl.BeginTransaction(); err != nil {
		return nil, v.fail(err)
	}
	res := v.cl.ProduceSync(ctx, recs...)
	perr := res.FirstErr()
	commit := kgo.TryCommit
	if perr != nil {
		commit = kgo.TryAbort
	}
	if err := v.cl.EndTransaction(ctx, commit); err != nil {
		return nil, v.fail(err)
	}
	if perr != nil {
		return nil, v.fail(perr)
	}
	pos := make([]Position, len(res))
	for i, r := range res {
		pos[i] = Position{Topic: r.Record.Topic, Partition: r.Record.Partition, Offset: r.Record.Offset}
	}
	return pos, nil
}

// fail turns fencing into a permanent ErrFenced|ErrConcurrencyConflict.
func (v *Versioned) fail(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		fenced := fmt.Errorf("%w: %w: transactional ID %s: %v", ErrConcurrencyConflict, ErrFenced, v.cfg.TransactionalID, err)
		v.mu.Lock()
		v.fenced = fenced
		v.mu.Unlock()
		return fenced
	}
	return fmt.Errorf("%w: %v", ErrPublish, err)
}

// Close stops the writer.
func (v *Versioned) Close() { v.cl.Close() }
