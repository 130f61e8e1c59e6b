package projectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	BatchEvents            int           `yaml:"batchEvents"`            // default 5000
	BatchBytes             int64         `yaml:"batchBytes"`             // default DefaultBatchBytes (16 MiB a projection)
	FlushInterval          time.Duration `yaml:"flushInterval"`          // default 200ms
	InsertTimeout          time.Duration `yaml:"insertTimeout"`          // default 30s
	RetryMin               time.Duration `yaml:"retryMin"`               // default 100ms
	RetryMax               time.Duration `yaml:"retryMax"`               // default 10s
	ShutdownTimeout        time.Duration `yaml:"shutdownTimeout"`        // default 30s
	MaxPendingBytes        int64         `yaml:"maxPendingBytes"`        // default DefaultMaxPendingBytes (4 MiB a projection)
	MaxPending             int           `yaml:"maxPending"`             // default 0: by bytes only
	StateCacheBytes        int64         `yaml:"stateCacheBytes"`        // default DefaultStateCacheBytes (16 MiB a projection)
	StateCacheSize         int           `yaml:"stateCacheSize"`         // default 0: by bytes only
	FetchMaxBytes          int64         `yaml:"fetchMaxBytes"`          // default DefaultFetchMaxBytes (4 MiB)
	FetchMaxPartitionBytes int64         `yaml:"fetchMaxPartitionBytes"` // default DefaultFetchMaxPartitionBytes (256 KiB)
	FetchMinBytes          int64         `yaml:"fetchMinBytes"`          // default DefaultFetchMinBytes (16 KiB)
	FetchMaxWait           time.Duration `yaml:"fetchMaxWait"`           // default DefaultFetchMaxWait (100ms)
	FenceCheckInterval     time.Duration `yaml:"fenceCheckInterval"`     // default 5s
	Pipeline               bool          `yaml:"pipeline"`               // default false
	Durable                bool          `yaml:"durable"`                // default false
}

// DefaultTuning is the runtime's defaults, the values a config file
// leaves out.
func DefaultTuning() Tuning {
	return Tuning{
		BatchEvents:            5000,
		BatchBytes:             DefaultBatchBytes,
		FlushInterval:          200 * time.Millisecond,
		InsertTimeout:          30 * time.Second,
		RetryMin:               100 * time.Millisecond,
		RetryMax:               10 * time.Second,
		ShutdownTimeout:        30 * time.Second,
		MaxPendingBytes:        DefaultMaxPendingBytes,
		StateCacheBytes:        DefaultStateCacheBytes,
		FetchMaxBytes:          DefaultFetchMaxBytes,
		FetchMaxPartitionBytes: DefaultFetchMaxPartitionBytes,
		FetchMinBytes:          DefaultFetchMinBytes,
		FetchMaxWait:           DefaultFetchMaxWait,
		FenceCheckInterval:     5 * time.Second,
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
	if s.BatchBytes < 1024 {
		add("batchBytes", "%d: must be ≥ 1024 (bytes per projection, shared by its partitions' batches)", s.BatchBytes)
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
	if s.MaxPendingBytes < 1024 {
		add("maxPendingBytes", "%d: must be ≥ 1024 (bytes per projection, shared by its partitions' queues)", s.MaxPendingBytes)
	}
	if s.MaxPending < 0 {
		add("maxPending", "%d: must be ≥ 0 (0: bounded by maxPendingBytes only)", s.MaxPending)
	}
	if s.StateCacheBytes < 1024 {
		add("stateCacheBytes", "%d: must be ≥ 1024 (bytes per projection, shared by its partitions)", s.StateCacheBytes)
	}
	if s.StateCacheSize < 0 {
		add("stateCacheSize", "%d: must be ≥ 0 (0: bounded by stateCacheBytes only)", s.StateCacheSize)
	}
	if s.FetchMaxBytes < 1024 || s.FetchMaxBytes > math.MaxInt32 {
		add("fetchMaxBytes", "%d: must be between 1024 and %d (bytes per fetch response)", s.FetchMaxBytes, math.MaxInt32)
	}
	if s.FetchMaxPartitionBytes < 1024 || s.FetchMaxPartitionBytes > math.MaxInt32 {
		add("fetchMaxPartitionBytes", "%d: must be between 1024 and %d (bytes per partition of a fetch response)", s.FetchMaxPartitionBytes, math.MaxInt32)
	}
	if s.FetchMinBytes < 1 || s.FetchMinBytes > s.FetchMaxBytes {
		add("fetchMinBytes", "%d: must be between 1 and fetchMaxBytes (%d): the bytes a fetch waits for, up to fetchMaxWait", s.FetchMinBytes, s.FetchMaxBytes)
	}
	if s.FetchMaxWait < time.Millisecond || s.FetchMaxWait > time.Duration(math.MaxInt32)*time.Millisecond {
		add("fetchMaxWait", "%s: must be between 1ms and %s (how long the broker may hold a fetch for new records)", s.FetchMaxWait, time.Duration(math.MaxInt32)*time.Millisecond)
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

// BatchBytes also flushes a partition's batch once its rows and the
// fetched records it holds until they are encoded reach its share of this
// many bytes (estimated from the rows' values and the records' keys,
// values and headers, see MaxPendingBytes): the projection's
// batches in this process, split equally among the partitions it holds (at
// least 1 KiB each), so they do not grow with them. Default
// DefaultBatchBytes (16 MiB: 4 MiB a batch with 4 partitions).
func BatchBytes(n int64) Opt { return func(c *cfg) { c.BatchBytes = n } }

// FlushInterval flushes a partition's batch this long after its first
// event was fetched (while the worker is not behind). Default 200ms.
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

// Memory bounds, by default: per projection in a process for fetched
// records, batches and cached states, which its partitions share. The
// demo's five projections over two topics of 4 partitions run 24 workers,
// 16 of them with a State table: at most 20 MiB of fetched records wait
// (each queue may take one fetch share past its bound) and 64 MiB of
// state is cached (4 projections × 16 MiB; its 10 000 aggregates
// need ~1.5 MiB per partition), which leaves room under a 256 MiB pod for
// batches in flight (their rows and encoded columns) and the Kafka
// client's fetch buffers. With 12 partitions a topic these stay the same;
// when they were per partition, the load test's two projections (24
// workers) peaked at 277 MB RSS with states, and at 321 MB with full
// batches during a slow replay.
const (
	DefaultBatchBytes      = 16 << 20
	DefaultMaxPendingBytes = 4 << 20
	DefaultStateCacheBytes = 16 << 20
	// The Kafka client's fetch responses (per projection: one client
	// each). franz-go's defaults (50 MiB a response, 10 MiB a partition)
	// bound nothing a small pod can afford. A partition's queue can take
	// one fetch's share past MaxPendingBytes (the poll loop never blocks),
	// so the share is kept small: measured in the load test (two
	// projections, 4 partitions each), 2 MiB waiting + 1 MiB shares held
	// up to 45 MB of records (estimated; the heap held ~140 MB of fetched
	// records in all), 1 MiB + 256 KiB held 15 MB, and peak RSS fell from
	// 312-326 MB to 258-259 MB with draining and replay no slower. Kafka
	// still returns a bigger record batch whole when its partition comes
	// first in a response, so progress never stops; raise the share when
	// producers write batches well above it.
	DefaultFetchMaxBytes          = 4 << 20
	DefaultFetchMaxPartitionBytes = 256 << 10
	// A fetch waits for this many bytes, up to FetchMaxWait. With
	// franz-go's 1 byte, a partition written to steadily was fetched as
	// soon as anything arrived, a few records a fetch: in the load test
	// (2 cores shared by all), at 1 % of the max rate (250 events/s) the
	// broker used 0.56 cores answering them, at 25 % 0.55-0.66. With 16
	// KiB: 0.24 and 0.32-0.40. Freshness at 1 %: p50 541 → 339 ms, p99
	// 918 → 566; at 50 % (noisier) p50 763-966 → 678-781 ms, p99
	// 1,569-1,894 → 1,262-1,869. A quieter partition waits FetchMaxWait.
	DefaultFetchMinBytes = 16 << 10
	// How long the broker may hold a fetch while it has less than
	// FetchMinBytes of new records: the most a record of a quiet
	// partition waits to be fetched. The client sends one fetch at a
	// time: a partition resumed after backpressure joins the next one,
	// so it waits for the fetch in flight. With franz-go's 5s, a hot
	// partition left alone at the end of a backlog (the others caught
	// up, their fetches idle) moved once per 5s: the load test's replay
	// spent its last 20 of 77 s that way.
	DefaultFetchMaxWait = 100 * time.Millisecond
)

// FetchMaxBytes bounds a fetch response of the projection's Kafka client
// (kgo.FetchMaxBytes; the broker returns at least one batch whatever the
// bound). Default DefaultFetchMaxBytes (4 MiB).
func FetchMaxBytes(n int64) Opt { return func(c *cfg) { c.FetchMaxBytes = n } }

// FetchMaxPartitionBytes bounds one partition's share of a fetch response
// (kgo.FetchMaxPartitionBytes). Default DefaultFetchMaxPartitionBytes
// (256 KiB).
func FetchMaxPartitionBytes(n int64) Opt { return func(c *cfg) { c.FetchMaxPartitionBytes = n } }

// FetchMinBytes is how many bytes of new records a fetch waits for, up
// to FetchMaxWait (kgo.FetchMinBytes). Default DefaultFetchMinBytes (16
// KiB).
func FetchMinBytes(n int64) Opt { return func(c *cfg) { c.FetchMinBytes = n } }

// FetchMaxWait bounds how long the broker may hold a fetch that has
// fewer than FetchMinBytes of new records (kgo.FetchMaxWait). Default
// DefaultFetchMaxWait (100ms).
func FetchMaxWait(d time.Duration) Opt { return func(c *cfg) { c.FetchMaxWait = d } }

// MaxPendingBytes bounds the fetched records (key, value and headers, plus
// a record's own size) waiting for the projection's partition workers in
// this process, shared equally by the partitions it holds like
// StateCacheBytes: a partition's fetching pauses while its share waits.
// A share is at least FetchMaxPartitionBytes (unless MaxPendingBytes is
// smaller): pausing is costly (the partition's fetching restarts on
// resume), so not much smaller than a fetch. Default
// DefaultMaxPendingBytes (4 MiB: 1 MiB a partition with 4, 256 KiB with
// 16 or more).
func MaxPendingBytes(n int64) Opt { return func(c *cfg) { c.MaxPendingBytes = n } }

// MaxPending also pauses fetching a partition while this many of its
// records wait for its worker. Default 0: bounded by MaxPendingBytes only.
func MaxPending(n int) Opt { return func(c *cfg) { c.MaxPending = n } }

// StateCacheBytes bounds the cached aggregate states of the projection in
// this process, by an estimate of their keys and values, shared equally
// by the partitions it holds (so it does not grow with them; at least
// 1 KiB each); past its share, a partition's states already durable are
// forgotten (and read back from the State table when needed). States of
// batches not yet durable are kept, so a cache can exceed its share by
// those of two batches. Default DefaultStateCacheBytes (16 MiB).
func StateCacheBytes(n int64) Opt { return func(c *cfg) { c.StateCacheBytes = n } }

// StateCacheSize also bounds the cached aggregate states of a partition by
// count. Default 0: bounded by StateCacheBytes only.
func StateCacheSize(n int) Opt { return func(c *cfg) { c.StateCacheSize = n } }

// Pipeline lets a partition's worker apply the next batch while the previous
// one is being inserted. Default false: on a machine shared with
// ClickHouse it adds latency and no throughput (see commit.go).
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

// FenceCheckInterval is how often a partition's committer checks that no
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
