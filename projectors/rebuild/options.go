package rebuild

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors"
)

// Opt configures Run.
type Opt func(*cfg)

type cfg struct {
	brokers       []string
	kgoOpts       []kgo.Opt
	from          From
	snapshot      bool
	inPlace       bool
	autoCutover   bool
	force         bool
	partialState  bool
	expect        []string
	maxLag        int64
	grace         time.Duration
	batch         int
	maxConcurrent int
	lockTTL       time.Duration
	interval      time.Duration
	statusEvery   time.Duration
	handover      time.Duration
	barrier       time.Duration
	gateIdle      time.Duration
	reporter      Reporter
	metrics       *Metrics
	logger        *slog.Logger
	runnerOpts    []projectors.Opt
	host          string
}

func defaultCfg() cfg {
	return cfg{
		from:          From{Kind: FromEarliest},
		autoCutover:   true,
		maxLag:        1000,
		grace:         24 * time.Hour,
		batch:         20000,
		maxConcurrent: 2,
		lockTTL:       30 * time.Second,
		interval:      time.Second,
		statusEvery:   2 * time.Second,
		handover:      30 * time.Second,
		barrier:       10 * time.Second,
		gateIdle:      3 * time.Second,
		logger:        slog.Default(),
	}
}

func (c *cfg) validate() error {
	var errs []error
	if len(c.brokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers"))
	}
	if c.snapshot && c.inPlace {
		errs = append(errs, errors.New("-snapshot and -in-place exclude each other: a snapshot copies the live generation into a new one, in-place rebuilds the live generation itself"))
	}
	if c.snapshot && c.from.Kind != FromEarliest {
		errs = append(errs, errors.New("-snapshot starts from the live generation's positions; it cannot be combined with -from"))
	}
	if c.maxLag < 0 {
		errs = append(errs, fmt.Errorf("max lag %d: must be ≥ 0", c.maxLag))
	}
	if c.batch < 1 {
		errs = append(errs, fmt.Errorf("batch %d: must be ≥ 1", c.batch))
	}
	if c.maxConcurrent < 1 {
		errs = append(errs, fmt.Errorf("max concurrent rebuilds %d: must be ≥ 1", c.maxConcurrent))
	}
	if c.interval <= 0 || c.lockTTL < 4*c.interval {
		errs = append(errs, fmt.Errorf("progress interval %s and lock TTL %s: need 0 < 4×interval ≤ TTL", c.interval, c.lockTTL))
	}
	return errors.Join(errs...)
}

// Brokers sets the Kafka seed brokers. Required.
func Brokers(b ...string) Opt { return func(c *cfg) { c.brokers = b } }

// KafkaOpts adds franz-go options (TLS, SASL, client ID) to every client.
func KafkaOpts(o ...kgo.Opt) Opt { return func(c *cfg) { c.kgoOpts = append(c.kgoOpts, o...) } }

// StartFrom sets where the replay starts. Default: the earliest offsets.
func StartFrom(f From) Opt { return func(c *cfg) { c.from = f } }

// WithSnapshot starts the new generation from a copy of the live one (see
// Snapshot) and replays only the tail. Default off.
func WithSnapshot() Opt { return func(c *cfg) { c.snapshot = true } }

// InPlace rebuilds the live generation itself: the downtime option (see
// the package doc). Default off (blue/green).
func InPlace() Opt { return func(c *cfg) { c.inPlace = true } }

// AutoCutover cuts over as soon as the lag is under MaxLag and the shadow
// comparison passed (true), or stops there and waits for a later run
// (false). Default true.
func AutoCutover(on bool) Opt { return func(c *cfg) { c.autoCutover = on } }

// Force cuts over even when the shadow comparison found differences.
// Default off.
func Force() Opt { return func(c *cfg) { c.force = true } }

// PartialState allows a replay that starts after the topics' beginning
// (StartFrom a time or offsets) for a projection with a State table, whose
// aggregates then start without their earlier events' state. Default:
// refused with ErrPartialState.
func PartialState() Opt { return func(c *cfg) { c.partialState = true } }

// ExpectChanges declares the tables a change of the projection is meant
// to change (a logic change, a new column computed from history): the
// shadow comparison's differences in them are reported and accepted;
// differences in any other table still stop the rebuild. Tables only in
// one of the two definitions are always accepted (they are the change).
// Default: none.
func ExpectChanges(tables ...string) Opt {
	return func(c *cfg) { c.expect = append(c.expect, tables...) }
}

// MaxLag is the lag (offsets, summed over partitions) under which the
// rebuild compares and cuts over. Default 1000.
func MaxLag(n int64) Opt { return func(c *cfg) { c.maxLag = n } }

// Grace keeps the replaced generation this long for rollback before
// `reel generations gc` may drop it. Default 24h.
func Grace(d time.Duration) Opt { return func(c *cfg) { c.grace = d } }

// BatchEvents is the replay's batch size. Default 20000.
func BatchEvents(n int) Opt { return func(c *cfg) { c.batch = n } }

// MaxConcurrent caps rebuilds running at once across projections. Default 2.
func MaxConcurrent(n int) Opt { return func(c *cfg) { c.maxConcurrent = n } }

// LockTTL is how long a killed rebuild's lock outlives it. Default 30s.
func LockTTL(d time.Duration) Opt { return func(c *cfg) { c.lockTTL = d } }

// ProgressInterval is how often positions are sampled. Default 1s.
func ProgressInterval(d time.Duration) Opt { return func(c *cfg) { c.interval = d } }

// Handover keeps the new generation's runner going after cut-over until
// another member (`reel project`) joins its group, at most this long.
// Default 30s; 0 stops at once.
func Handover(d time.Duration) Opt { return func(c *cfg) { c.handover = d } }

// Barrier bounds the wait, at cut-over, for the new generation to reach
// the live generation's positions. Default 10s.
func Barrier(d time.Duration) Opt { return func(c *cfg) { c.barrier = d } }

// GateIdle ends the schema gate's scan of a partition that returns nothing
// for this long before its end offset (transaction markers). Default 3s.
func GateIdle(d time.Duration) Opt { return func(c *cfg) { c.gateIdle = d } }

// WithReporter shows progress to a human. Default: none.
func WithReporter(r Reporter) Opt { return func(c *cfg) { c.reporter = r } }

// WithMetrics exports progress as Prometheus metrics. Default: none.
func WithMetrics(m *Metrics) Opt { return func(c *cfg) { c.metrics = m } }

// Logger sets the logger. Default slog.Default().
func Logger(l *slog.Logger) Opt { return func(c *cfg) { c.logger = l } }

// RunnerOpts adds options to the replay's projectors.Runner.
func RunnerOpts(o ...projectors.Opt) Opt {
	return func(c *cfg) { c.runnerOpts = append(c.runnerOpts, o...) }
}

// Host names this process in the lock and status rows. Default: hostname.
func Host(h string) Opt { return func(c *cfg) { c.host = h } }

// Start kinds of From.
const (
	FromEarliest  = "earliest"
	FromTimestamp = "timestamp"
	FromOffsets   = "offsets"
)

// From is where a replay starts.
type From struct {
	Kind    string
	Time    time.Time                  // FromTimestamp
	Offsets map[string]map[int32]int64 // FromOffsets; unlisted partitions start at the earliest
}

// ParseFrom parses the -from flag: "earliest", an RFC 3339 timestamp, or
// "offsets:<topic>:<p>=<o>,<p>=<o>[;<topic>:…]".
func ParseFrom(s string) (From, error) {
	switch {
	case s == "" || s == FromEarliest:
		return From{Kind: FromEarliest}, nil
	case strings.HasPrefix(s, "offsets:"):
		f := From{Kind: FromOffsets, Offsets: map[string]map[int32]int64{}}
		for _, spec := range strings.Split(strings.TrimPrefix(s, "offsets:"), ";") {
			i := strings.LastIndex(spec, ":")
			if i <= 0 {
				return f, fmt.Errorf("-from %q: want offsets:<topic>:<partition>=<offset>,…", s)
			}
			topic := spec[:i]
			for _, po := range strings.Split(spec[i+1:], ",") {
				ps, os, ok := strings.Cut(po, "=")
				p, err1 := strconv.ParseInt(ps, 10, 32)
				o, err2 := strconv.ParseInt(os, 10, 64)
				if !ok || err1 != nil || err2 != nil || p < 0 || o < 0 {
					return f, fmt.Errorf("-from %q: %q is not <partition>=<offset>", s, po)
				}
				setPos(f.Offsets, topic, int32(p), o)
			}
		}
		return f, nil
	default:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return From{}, fmt.Errorf("-from %q: want earliest, an RFC 3339 timestamp or offsets:<topic>:<p>=<o>,…", s)
		}
		return From{Kind: FromTimestamp, Time: t}, nil
	}
}

func (f From) String() string {
	switch f.Kind {
	case FromTimestamp:
		return f.Time.UTC().Format(time.RFC3339Nano)
	case FromOffsets:
		return "offsets:" + formatPositions(f.Offsets)
	}
	return FromEarliest
}

// formatPositions renders topic:p=o,p=o;topic2:… sorted.
func formatPositions(m map[string]map[int32]int64) string {
	var topics []string
	for t := range m {
		topics = append(topics, t)
	}
	sortStrings(topics)
	var parts []string
	for _, t := range topics {
		var ps []int32
		for p := range m[t] {
			ps = append(ps, p)
		}
		sortInt32(ps)
		var kv []string
		for _, p := range ps {
			kv = append(kv, fmt.Sprintf("%d=%d", p, m[t][p]))
		}
		parts = append(parts, t+":"+strings.Join(kv, ","))
	}
	return strings.Join(parts, ";")
}

func parsePositions(s string) (map[string]map[int32]int64, error) {
	f, err := ParseFrom("offsets:" + s)
	return f.Offsets, err
}
