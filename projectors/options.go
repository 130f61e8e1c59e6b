package projectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Opt configures a Runner.
type Opt func(*cfg)

type cfg struct {
	brokers         []string
	generation      int
	batchEvents     int
	batchBytes      int64
	flushInterval   time.Duration
	insertTimeout   time.Duration
	retryMin        time.Duration
	retryMax        time.Duration
	shutdownTimeout time.Duration
	maxPollRecords  int
	maxPending      int
	maxPendingBytes int64
	fenceCheck      time.Duration
	stateCacheSize  int
	stateCacheBytes int64
	replay          bool
	effectsByGen    bool
	pipeline        bool
	durable         bool
	views           bool
	start           map[string]map[int32]kgo.Offset
	startAt         *kgo.Offset
	logger          *slog.Logger
	metrics         *Metrics
	hooks           []kgo.Hook
	kgoOpts         []kgo.Opt
}

func defaultCfg() cfg {
	return cfg{
		generation:      1,
		batchEvents:     5000,
		batchBytes:      DefaultBatchBytes,
		flushInterval:   200 * time.Millisecond,
		insertTimeout:   30 * time.Second,
		retryMin:        100 * time.Millisecond,
		retryMax:        10 * time.Second,
		shutdownTimeout: 30 * time.Second,
		maxPollRecords:  10000,
		maxPendingBytes: DefaultMaxPendingBytes,
		stateCacheBytes: DefaultStateCacheBytes,
		fenceCheck:      5 * time.Second,
		views:           true,
		logger:          slog.Default(),
	}
}

func (c *cfg) validate() error {
	var errs []error
	if len(c.brokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers (Brokers)"))
	}
	if c.generation < 1 {
		errs = append(errs, fmt.Errorf("generation %d: must be ≥ 1", c.generation))
	}
	for _, n := range []struct {
		what   string
		v, min int64
	}{
		{"batch size (BatchEvents)", int64(c.batchEvents), 1},
		{"batch bytes (BatchBytes)", c.batchBytes, 1},
		{"pending bytes (MaxPendingBytes)", c.maxPendingBytes, 1},
		{"pending records (MaxPending; 0: no bound by count)", int64(c.maxPending), 0},
		{"state cache bytes (StateCacheBytes)", c.stateCacheBytes, 1},
		{"state cache entries (StateCacheSize; 0: no bound by count)", int64(c.stateCacheSize), 0},
	} {
		if n.v < n.min {
			errs = append(errs, fmt.Errorf("%s %d: must be ≥ %d", n.what, n.v, n.min))
		}
	}
	if c.flushInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("flush interval %s: must be ≥ 1ms", c.flushInterval))
	}
	if c.retryMin <= 0 || c.retryMax < c.retryMin {
		errs = append(errs, fmt.Errorf("retry backoff %s..%s: need 0 < min ≤ max", c.retryMin, c.retryMax))
	}
	return errors.Join(errs...)
}

// startOffset is where a partition with nothing in ClickHouse starts.
func (c *cfg) startOffset(topic string, p int32) kgo.Offset {
	if o, ok := c.start[topic][p]; ok {
		return o
	}
	if c.startAt != nil {
		return *c.startAt
	}
	return kgo.NewOffset().AtStart()
}

// Brokers sets the Kafka seed brokers. Required.
func Brokers(b ...string) Opt { return func(c *cfg) { c.brokers = b } }

// Generation sets the generation to run. Default 1.
func Generation(g int) Opt { return func(c *cfg) { c.generation = g } }

// BatchEvents flushes a partition's batch at this many events. Default 5000.
func BatchEvents(n int) Opt { return func(c *cfg) { c.batchEvents = n } }

// BatchBytes also flushes a partition's batch once its rows hold this many
// bytes (estimated from their values). Default DefaultBatchBytes (4 MiB).
func BatchBytes(n int64) Opt { return func(c *cfg) { c.batchBytes = n } }

// FlushInterval flushes a partition's batch this long after its first
// event. Default 200ms.
func FlushInterval(d time.Duration) Opt { return func(c *cfg) { c.flushInterval = d } }

// InsertTimeout bounds one ClickHouse insert. Default 30s.
func InsertTimeout(d time.Duration) Opt { return func(c *cfg) { c.insertTimeout = d } }

// RetryBackoff sets the capped exponential backoff of ClickHouse retries.
// Default 100ms to 10s.
func RetryBackoff(minD, maxD time.Duration) Opt {
	return func(c *cfg) { c.retryMin, c.retryMax = minD, maxD }
}

// ShutdownTimeout bounds the final flush of revoked partitions. Default 30s.
func ShutdownTimeout(d time.Duration) Opt { return func(c *cfg) { c.shutdownTimeout = d } }

// Memory bounds per partition worker, by default. The load test's five
// demo projections over two topics of 4 partitions run 24 workers, 16 of
// them with a State table: at most 48 MiB of fetched records wait and
// 64 MiB of state is cached (its 10 000 aggregates need ~1.5 MiB per
// partition), which leaves room under a 256 MiB pod for batches in flight
// and the Kafka client's fetch buffers.
const (
	DefaultBatchBytes      = 4 << 20
	DefaultMaxPendingBytes = 2 << 20
	DefaultStateCacheBytes = 4 << 20
)

// MaxPendingBytes pauses fetching a partition while this many bytes of its
// records (key, value and headers, plus a record's own size) wait for its
// worker. Default DefaultMaxPendingBytes (2 MiB). Pausing is costly (the
// partition's fetching restarts on resume), so not much smaller than a
// fetch.
func MaxPendingBytes(n int64) Opt { return func(c *cfg) { c.maxPendingBytes = n } }

// MaxPending also pauses fetching a partition while this many of its
// records wait for its worker. Default 0: bounded by MaxPendingBytes only.
func MaxPending(n int) Opt { return func(c *cfg) { c.maxPending = n } }

// StateCacheBytes bounds the cached aggregate states of a partition, by an
// estimate of their keys and values; past it, states already durable are
// forgotten (and read back from the State table when needed). States of
// batches not yet durable are kept, so the cache can exceed the bound by
// those of two batches. Default DefaultStateCacheBytes (4 MiB).
func StateCacheBytes(n int64) Opt { return func(c *cfg) { c.stateCacheBytes = n } }

// StateCacheSize also bounds the cached aggregate states of a partition by
// count. Default 0: bounded by StateCacheBytes only.
func StateCacheSize(n int) Opt { return func(c *cfg) { c.stateCacheSize = n } }

// Pipeline lets a partition's worker apply the next batch while the previous
// one is being inserted. Default false: on a machine shared with
// ClickHouse it adds latency and no throughput (see commit.go).
func Pipeline(on bool) Opt { return func(c *cfg) { c.pipeline = on } }

// Durable makes every insert of the generation fsync its part and the
// part's directory before it returns (the tables' fsync_after_insert and
// fsync_part_directory), so an acknowledged batch survives a power loss of
// the ClickHouse host, at the cost of an fsync per insert. Default false:
// ClickHouse acknowledges an insert once the part is written to the page
// cache, and replicas or backups are the usual protection.
func Durable(on bool) Opt { return func(c *cfg) { c.durable = on } }

// Replay marks the runner as replaying history (a rebuild): Tx.Replaying
// is true and side effects are not run. Default false.
func Replay(on bool) Opt { return func(c *cfg) { c.replay = on } }

// EffectsByGeneration runs side effects by the generation's effects
// window in _reel_effects (see store/effects.go): a building or standby
// generation runs none, the live one all, and HandOverEffects moves them
// at a precise offset at cut-over. With Replay, effects are collected and
// run once a hand-over gives the generation a window. Default false: every
// effect runs unless Replay (a single generation).
func EffectsByGeneration() Opt { return func(c *cfg) { c.effectsByGen = true } }

// WithoutViews keeps the stable views where they point (a rebuild's shadow
// generation). Default: views point at this generation.
func WithoutViews() Opt { return func(c *cfg) { c.views = false } }

// StartOffsets sets where partitions with nothing in ClickHouse start.
// Default: the earliest offset.
func StartOffsets(m map[string]map[int32]kgo.Offset) Opt { return func(c *cfg) { c.start = m } }

// StartAt sets where every partition with nothing in ClickHouse starts
// (e.g. kgo.NewOffset().AfterMilli(ts)). Default: the earliest offset.
func StartAt(o kgo.Offset) Opt { return func(c *cfg) { c.startAt = &o } }

// FenceCheckInterval is how often a partition's committer checks that no
// other member claimed the partition since (default 5s; also before every
// batch with side effects). Correctness does not depend on it: the
// ClickHouse guard drops a stale member's rows; the check makes a stale
// member stop and rejoin sooner.
func FenceCheckInterval(d time.Duration) Opt { return func(c *cfg) { c.fenceCheck = d } }

// Logger sets the logger. Default slog.Default().
func Logger(l *slog.Logger) Opt { return func(c *cfg) { c.logger = l } }

// WithMetrics sets the metrics (registered on the caller's registry).
// Default: unregistered metrics.
func WithMetrics(m *Metrics) Opt { return func(c *cfg) { c.metrics = m } }

// KafkaHooks adds franz-go hooks (e.g. kprom metrics) to the client.
func KafkaHooks(h ...kgo.Hook) Opt { return func(c *cfg) { c.hooks = append(c.hooks, h...) } }

// KafkaOpts adds franz-go client options (TLS, SASL, …).
func KafkaOpts(o ...kgo.Opt) Opt { return func(c *cfg) { c.kgoOpts = append(c.kgoOpts, o...) } }

// kgoLogger adapts slog to franz-go's logger.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }
func (k kgoLogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	lv := slog.LevelInfo
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelDebug:
		lv = slog.LevelDebug
	}
	k.l.Log(context.Background(), lv, "kafka: "+msg, kv...)
}
