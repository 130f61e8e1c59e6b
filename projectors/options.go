package projectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Opt configures a Runner.
type Opt func(*cfg)

type cfg struct {
	// Tuning is what the config file sets (projector.*).
	Tuning
	brokers        []string
	generation     int
	maxPollRecords int
	replay         bool
	effectsByGen   bool
	views          bool
	start          map[string]map[int32]kgo.Offset
	startAt        *kgo.Offset
	logger         *slog.Logger
	metrics        *Metrics
	hooks          []kgo.Hook
	kgoOpts        []kgo.Opt
}

// Tuning is a runner's tunables as plain values: the config file's
// projector section holds them under the YAML keys beside each field
// (projector.batchEvents, …), WithTuning applies them, and
// DefaultTuning and Validate are the only defaults and checks of these
// values, so `reel project -validate` and NewRunner agree. Each field has
// an option of its name (BatchEvents, FlushInterval, …) for programs.
type Tuning struct {
	BatchEvents        int           `yaml:"batchEvents"`        // default 5000
	FlushInterval      time.Duration `yaml:"flushInterval"`      // default 200ms
	InsertTimeout      time.Duration `yaml:"insertTimeout"`      // default 30s
	RetryMin           time.Duration `yaml:"retryMin"`           // default 100ms
	RetryMax           time.Duration `yaml:"retryMax"`           // default 10s
	ShutdownTimeout    time.Duration `yaml:"shutdownTimeout"`    // default 30s
	MaxPending         int           `yaml:"maxPending"`         // default 0: ten times batchEvents
	StateCacheSize     int           `yaml:"stateCacheSize"`     // default 200000
	FenceCheckInterval time.Duration `yaml:"fenceCheckInterval"` // default 5s
	Pipeline           bool          `yaml:"pipeline"`           // default false
	Durable            bool          `yaml:"durable"`            // default false
}

// DefaultTuning is the runtime's defaults, the values a config file
// leaves out.
func DefaultTuning() Tuning {
	return Tuning{
		BatchEvents:        5000,
		FlushInterval:      200 * time.Millisecond,
		InsertTimeout:      30 * time.Second,
		RetryMin:           100 * time.Millisecond,
		RetryMax:           10 * time.Second,
		ShutdownTimeout:    30 * time.Second,
		StateCacheSize:     200000,
		FenceCheckInterval: 5 * time.Second,
	}
}

// TuningError is one invalid setting; Key is its YAML key (batchEvents).
type TuningError struct {
	Key, Msg string
}

func (e TuningError) Error() string { return e.Key + ": " + e.Msg }

// TuningErrors lists every invalid setting.
type TuningErrors []TuningError

func (es TuningErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Validate returns TuningErrors naming each invalid value by its key, or
// nil.
func (s Tuning) Validate() error {
	var es TuningErrors
	add := func(key, format string, args ...any) {
		es = append(es, TuningError{key, fmt.Sprintf(format, args...)})
	}
	if s.BatchEvents < 1 {
		add("batchEvents", "%d: must be ≥ 1", s.BatchEvents)
	}
	if s.FlushInterval < time.Millisecond {
		add("flushInterval", "%s: must be ≥ 1ms", s.FlushInterval)
	}
	if s.InsertTimeout <= 0 {
		add("insertTimeout", "%s: must be > 0", s.InsertTimeout)
	}
	if s.RetryMin <= 0 {
		add("retryMin", "%s: must be > 0", s.RetryMin)
	}
	if s.RetryMax < s.RetryMin {
		add("retryMax", "%s: must be ≥ retryMin (%s)", s.RetryMax, s.RetryMin)
	}
	if s.ShutdownTimeout <= 0 {
		add("shutdownTimeout", "%s: must be > 0", s.ShutdownTimeout)
	}
	if s.MaxPending < 0 {
		add("maxPending", "%d: must be ≥ 0 (0: ten times batchEvents)", s.MaxPending)
	}
	if s.StateCacheSize < 0 {
		add("stateCacheSize", "%d: must be ≥ 0", s.StateCacheSize)
	}
	if s.FenceCheckInterval < 0 {
		add("fenceCheckInterval", "%s: must be ≥ 0 (0: after every batch)", s.FenceCheckInterval)
	}
	if len(es) == 0 {
		return nil
	}
	return es
}

// WithTuning applies every setting of s (a config file's projector
// section).
func WithTuning(s Tuning) Opt { return func(c *cfg) { c.Tuning = s } }

func defaultCfg() cfg {
	return cfg{
		Tuning:         DefaultTuning(),
		generation:     1,
		maxPollRecords: 10000,
		views:          true,
		logger:         slog.Default(),
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
	if err := c.Tuning.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxPending == 0 {
		c.MaxPending = 10 * c.BatchEvents
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
func BatchEvents(n int) Opt { return func(c *cfg) { c.BatchEvents = n } }

// FlushInterval flushes a partition's batch this long after its first
// event. Default 200ms.
func FlushInterval(d time.Duration) Opt { return func(c *cfg) { c.FlushInterval = d } }

// InsertTimeout bounds one ClickHouse insert. Default 30s.
func InsertTimeout(d time.Duration) Opt { return func(c *cfg) { c.InsertTimeout = d } }

// RetryBackoff sets the capped exponential backoff of ClickHouse retries.
// Default 100ms to 10s.
func RetryBackoff(minD, maxD time.Duration) Opt {
	return func(c *cfg) { c.RetryMin, c.RetryMax = minD, maxD }
}

// ShutdownTimeout bounds the final flush of revoked partitions. Default 30s.
func ShutdownTimeout(d time.Duration) Opt { return func(c *cfg) { c.ShutdownTimeout = d } }

// MaxPending pauses fetching a partition while this many of its records wait
// for its worker. Default: ten times BatchEvents (pausing is costly: the
// partition's fetching restarts on resume).
func MaxPending(n int) Opt { return func(c *cfg) { c.MaxPending = n } }

// StateCacheSize caps the cached aggregate states per partition. Default 200000.
func StateCacheSize(n int) Opt { return func(c *cfg) { c.StateCacheSize = n } }

// Pipeline lets a partition's worker apply the next batch while the previous
// one is being inserted. Default false: on a machine shared with
// ClickHouse it adds latency and no throughput (see flush.go).
func Pipeline(on bool) Opt { return func(c *cfg) { c.Pipeline = on } }

// Durable makes every insert of the generation fsync its part and the
// part's directory before it returns (the tables' fsync_after_insert and
// fsync_part_directory), so an acknowledged batch survives a power loss of
// the ClickHouse host, at the cost of an fsync per insert. Default false:
// ClickHouse acknowledges an insert once the part is written to the page
// cache, and replicas or backups are the usual protection.
func Durable(on bool) Opt { return func(c *cfg) { c.Durable = on } }

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
func FenceCheckInterval(d time.Duration) Opt { return func(c *cfg) { c.FenceCheckInterval = d } }

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
