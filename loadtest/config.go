package loadtest

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Config configures a load test run. Zero values take the defaults noted.
type Config struct {
	Brokers     []string      // Kafka seed brokers (required)
	DSN         string        // ClickHouse DSN, any database (required); the run uses Database
	Database    string        // ClickHouse database of the run, dropped first; default "reel_loadtest"
	Out         string        // results root; a <timestamp> directory is created in it; default "results"
	Partitions  int           // partitions per topic; default 4
	Aggregates  int           // aggregate slots drawn from; default 10000
	ZipfS       float64       // Zipf exponent (> 1); default 1.1
	Rate        float64       // events/s of the max phase; 0: as fast as possible
	MaxDuration time.Duration // length of the max phase; default 30s
	MaxEvents   int64         // stop the max phase after this many events instead (0: by duration)
	Levels      []float64     // freshness levels as fractions of the max rate; default 0.25, 0.5, 0.75
	LevelTime   time.Duration // length of each freshness level; default 15s
	Batch       int           // projector BatchEvents and raw insert batch size; default 5000
	RawRows     int           // rows per table for the raw insert limit; default 50000
	// MemoryLimitMB is the projector processes' memory limit, given as the
	// Helm chart gives a pod's (REEL_MEMORY_LIMIT; reel sets Go's soft
	// limit 64 MiB below it, at most 90 % and at least half). 0: none.
	MemoryLimitMB int64
	Peer          bool     // run the peer (ClickHouse Kafka engine through reel-chdb); default true via the CLI
	PeerBrokers   []string // brokers as ClickHouse must reach them; default Brokers
	Seed          uint64   // generator seed; 0: fixed 1
	// Watch names processes whose CPU the report accounts for per phase
	// beside the projector's and its own (scripts/loadtest.sh passes the
	// ClickHouse server's and the Kafka broker's).
	Watch map[string]int

	Scale           bool          // run the scale curve after the rest (long)
	ScalePartitions []int         // partitions per topic of the throughput steps; default 1, 4, 12
	ScaleReplicas   []int         // projector replicas, on the most partitions; default 1, 2, 3
	ScaleEvents     int64         // events produced flat out in each step; default 1,000,000
	ScaleLevelTime  time.Duration // freshness level (half the step's rate) of each step; default 10s
	ScaleHistory    []int64       // history sizes replayed in full, ascending; default 1 M, 5 M, 10 M
	Progress        io.Writer     // progress display (stderr); nil: none
	Log             io.Writer     // projector process logs; nil: discarded
}

func (c *Config) defaults() {
	if c.Database == "" {
		c.Database = "reel_loadtest"
	}
	if c.Out == "" {
		c.Out = "results"
	}
	if c.Partitions <= 0 {
		c.Partitions = 4
	}
	if c.Aggregates <= 0 {
		c.Aggregates = 10000
	}
	if c.ZipfS == 0 {
		c.ZipfS = 1.1
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = 30 * time.Second
	}
	if len(c.Levels) == 0 {
		c.Levels = []float64{0.25, 0.5, 0.75}
	}
	if c.LevelTime <= 0 {
		c.LevelTime = 15 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 5000
	}
	if c.RawRows <= 0 {
		c.RawRows = 50000
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if len(c.ScalePartitions) == 0 {
		c.ScalePartitions = []int{1, 4, 12}
	}
	if len(c.ScaleReplicas) == 0 {
		c.ScaleReplicas = []int{1, 2, 3}
	}
	if c.ScaleEvents <= 0 {
		c.ScaleEvents = 1_000_000
	}
	if c.ScaleLevelTime <= 0 {
		c.ScaleLevelTime = 10 * time.Second
	}
	if len(c.ScaleHistory) == 0 {
		c.ScaleHistory = []int64{1_000_000, 5_000_000, 10_000_000}
	}
	if len(c.PeerBrokers) == 0 {
		c.PeerBrokers = c.Brokers
	}
}

func (c *Config) validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers (-brokers or REEL_KAFKA_BROKERS)"))
	}
	if c.DSN == "" {
		errs = append(errs, errors.New("no ClickHouse DSN (-clickhouse or REEL_CLICKHOUSE_DSN)"))
	}
	if c.ZipfS <= 1 {
		errs = append(errs, fmt.Errorf("zipf exponent %g: must be > 1", c.ZipfS))
	}
	if c.Aggregates < 10 {
		errs = append(errs, fmt.Errorf("aggregates %d: need at least 10", c.Aggregates))
	}
	for _, l := range c.Levels {
		if l <= 0 || l > 1 {
			errs = append(errs, fmt.Errorf("level %g: fractions must be in (0, 1]", l))
		}
	}
	for _, p := range c.ScalePartitions {
		if p < 1 {
			errs = append(errs, fmt.Errorf("scale partitions %d: must be ≥ 1", p))
		}
	}
	for _, n := range c.ScaleReplicas {
		if n < 1 {
			errs = append(errs, fmt.Errorf("scale replicas %d: must be ≥ 1", n))
		}
	}
	for i, h := range c.ScaleHistory {
		if h < 1 || (i > 0 && h <= c.ScaleHistory[i-1]) {
			errs = append(errs, fmt.Errorf("scale history %v: sizes must be positive and ascending", c.ScaleHistory))
			break
		}
	}
	return errors.Join(errs...)
}
