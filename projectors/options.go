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
	flushInterval   time.Duration
	insertTimeout   time.Duration
	retryMin        time.Duration
	retryMax        time.Duration
	shutdownTimeout time.Duration
	maxPollRecords  int
	maxPending      int
	fenceCheck      time.Duration
	stateCacheSize  int
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
		flushInterval:   200 * time.Millisecond,
		insertTimeout:   30 * time.Second,
		retryMin:        100 * time.Millisecond,
		retryMax:        10 * time.Second,
		shutdownTimeout: 30 * time.Second,
		maxPollRecords:  10000,
		stateCacheSize:  200000,
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
	if c.batchEvents < 1 {
		errs = append(errs, fmt.Errorf("batch size %d: must be ≥ 1", c.batchEvents))
	}
	if c.maxPending == 0 {
		c.maxPending = 10 * c.batchEvents
	}
	if c.maxPending < 1 {
		errs = append(errs, fmt.Errorf("max pending %d: must be ≥ 1", c.maxPending))
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

// MaxPending pauses fetching a partition while this many of its records wait
// for its worker. Default: ten times BatchEvents (pausing is costly: the
// partition's fetching restarts on resume).
func MaxPending(n int) Opt { return func(c *cfg) { c.maxPending = n } }

// StateCacheSize caps the cached aggregate states per partition. Default 200000.
func StateCacheSize(n int) Opt { return func(c *cfg) { c.stateCacheSize = n } }

// Pipeline lets a partition's worker apply the next batch while the previous
// one is being inserted. Default false: on a machine shared with
// ClickHouse it adds latency and no throughput (see flush.go).
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

// FenceCheckInterval is how often a partition's flusher checks that no
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
