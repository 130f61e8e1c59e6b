package loadtest

import (
	"slices"
	"strings"
	"time"
)

// Results is results.json: every figure of one run.
type Results struct {
	Started    time.Time      `json:"started"`
	Dir        string         `json:"dir"`
	Machine    Machine        `json:"machine"`
	Config     RunConfig      `json:"config"`
	Produce    Rate           `json:"produce"`         // max phase, producer flat out (or -rate)
	LiveMax    Rate           `json:"live_max"`        // projector events/s while the producer runs flat out (steady window)
	Drain      Rate           `json:"drain"`           // projector alone draining the backlog left by the max phase
	Partitions []PartShare    `json:"partitions"`      // events per partition after the drain
	MaxRate    float64        `json:"max_rate"`        // events/s the freshness levels are fractions of
	Freshness  []Level        `json:"freshness"`       // per load level
	RawConsume Rate           `json:"raw_consume"`     // franz-go group consumer, no processing
	RawInsert  RawInsert      `json:"raw_insert"`      // clickhouse-go batch inserts of the same rows
	InsertCost []InsertCost   `json:"insert_cost"`     // what one insert costs ClickHouse, by setup
	CPU        []PhaseCPU     `json:"cpu"`             // who used the machine's cores, per phase
	Replay     Rate           `json:"replay"`          // full-replay rebuild (generation 2)
	Cutover    Cutover        `json:"cutover"`         // view switch to generation 2 under query load
	Projector  Usage          `json:"projector"`       // CPU and memory of the projector process
	Peer       Peer           `json:"peer"`            // a peer on the same topic
	AppendOnly AppendOnly     `json:"append_only"`     // Reel's append-only projection vs the peer: equal work
	Scale      *Scale         `json:"scale,omitempty"` // -scale: the scale curve
	Ratios     Ratios         `json:"ratios"`          // the headline ratios
	Targets    []Target       `json:"targets"`         // the targets, met or not
	Profiles   []PhaseProfile `json:"profiles"`        // CPU and allocation profiles of the projector per phase
	Timeline   []Sample       `json:"timeline"`        // one sample per second
	ReplayProg []Point        `json:"replay_progress"`
	Notes      []string       `json:"notes"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GoVersion  string `json:"go"`
	ClickHouse string `json:"clickhouse"`
	Brokers    string `json:"brokers"`
	LoadAvg    string `json:"loadavg_at_start"`
}

// RunConfig is the part of Config worth recording.
type RunConfig struct {
	Partitions    int       `json:"partitions"`
	Aggregates    int       `json:"aggregates"`
	ZipfS         float64   `json:"zipf_s"`
	Rate          float64   `json:"rate"`
	MaxDuration   string    `json:"max_duration"`
	Levels        []float64 `json:"levels"`
	LevelTime     string    `json:"level_time"`
	Batch         int       `json:"batch"`
	MemoryLimitMB int64     `json:"memory_limit_mb"`
	Projections   []string  `json:"projections"`
	TopicPrefix   string    `json:"topic_prefix"`
}

// Rate is events over seconds.
type Rate struct {
	Events  int64   `json:"events"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"per_sec"`
}

func rate(n int64, d time.Duration) Rate {
	r := Rate{Events: n, Seconds: d.Seconds()}
	if d > 0 {
		r.PerSec = float64(n) / d.Seconds()
	}
	return r
}

// Level is one freshness load level.
type Level struct {
	Fraction   float64    `json:"fraction"`
	TargetRate float64    `json:"target_rate"`
	Produced   Rate       `json:"produced"`
	Samples    int        `json:"samples"`
	Pending    int        `json:"pending_at_end"`
	P50        float64    `json:"p50_ms"`
	P95        float64    `json:"p95_ms"`
	P99        float64    `json:"p99_ms"`
	Max        float64    `json:"max_ms"`
	ProbeP50   float64    `json:"probe_query_p50_ms"`
	CPU        float64    `json:"projector_cpu"` // CPU seconds per wall second
	Waits      Waits      `json:"waits"`
	Server     ServerWork `json:"server"`
}

// RawInsert is the clickhouse-go insert-only limit.
type RawInsert struct {
	Tables       []TableInsert `json:"tables"`
	EventsPerSec float64       `json:"events_per_sec"` // events whose rows ClickHouse takes per second
}

// TableInsert is the raw insert rate of one table's rows.
type TableInsert struct {
	Table      string  `json:"table"`
	RowsPerEv  float64 `json:"rows_per_event"` // rows Reel wrote into it per event of the run
	Rows       int     `json:"rows_inserted"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec"`
}

// Cutover is the view switch under query load.
type Cutover struct {
	Method     string  `json:"method"`
	DurationMs float64 `json:"duration_ms"`
	Queries    int64   `json:"queries"`
	// PacedQueries of Queries ran during the replay, one per loop every
	// hammerPace; the rest flat out around the switch.
	PacedQueries int64  `json:"paced_queries"`
	Failed       int64  `json:"failed"`
	FirstError   string `json:"first_error,omitempty"`
	Verified     string `json:"verified"`
}

// Usage is the projector process's resources.
type Usage struct {
	CPUMax      float64 `json:"cpu_max_phase"` // CPU s / wall s during the max phase
	CPUReplay   float64 `json:"cpu_replay"`    // during the replay
	CPUPerKEv   float64 `json:"cpu_ms_per_1k_events"`
	RSSMaxMB    float64 `json:"rss_max_mb"`
	HeapMaxMB   float64 `json:"heap_max_mb"`
	HeapSysMaxM float64 `json:"heap_sys_max_mb"`
	PeakRSSMB   float64 `json:"peak_rss_mb"` // the highest of Peaks and PhaseMemory

	PhaseMemory []PhaseMemory `json:"phase_memory"`
	Peaks       []ProcessPeak `json:"process_peaks"`
	PeakHeap    *PeakHeap     `json:"peak_heap,omitempty"`
}

// Peer is the side-by-side tool.
type Peer struct {
	Name    string   `json:"name"`
	Ran     bool     `json:"ran"`
	What    string   `json:"what"`
	Rate    Rate     `json:"rate"`
	Ratio   float64  `json:"reel_over_peer"`
	Reason  string   `json:"reason,omitempty"`
	Skipped []string `json:"not_run,omitempty"`
}

// Ratios are the headline figures.
type Ratios struct {
	ProjectorOverRaw   float64 `json:"projector_over_min_raw"`
	ProjectorRate      float64 `json:"projector_rate"`
	MinRaw             float64 `json:"min_raw"`
	MinRawIs           string  `json:"min_raw_is"`
	ReplayOverLive     float64 `json:"replay_over_live_max"`
	ReplayOverHalf     float64 `json:"replay_over_half_rate"`
	ProduceOverProject float64 `json:"produce_over_projector"`
}

// Target is one goal of the issue.
type Target struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Goal  string `json:"goal"`
	Met   bool   `json:"met"`
}

// AppendOnly is the like-for-like peer comparison: Reel's append-only
// copy of the shop topic and the peer's copy of the same topic.
type AppendOnly struct {
	Events int64   `json:"events"` // records in the shop topic
	Reel   Rate    `json:"reel"`
	Peer   Rate    `json:"peer"`
	Ratio  float64 `json:"reel_over_peer"`
}

// Sample is one second of the run.
type Sample struct {
	T          float64 `json:"t"`
	Phase      string  `json:"phase"`
	Produced   int64   `json:"produced"`
	Applied    int64   `json:"applied"`
	Generation int     `json:"generation"`
	CPU        float64 `json:"cpu"` // projector CPU s / wall s over the last second
	RSSMB      float64 `json:"rss_mb"`
	HeapMB     float64 `json:"heap_mb"`
	PendingMB  float64 `json:"pending_mb"`  // records waiting for workers (estimate)
	BufferedMB float64 `json:"buffered_mb"` // records the Kafka clients hold until a poll
}

// Point is replay progress.
type Point struct {
	T        float64 `json:"t"`
	Applied  int64   `json:"applied"`
	Fraction float64 `json:"fraction"`
}

// PartShare is how many events a partition held after the drain and its
// share of its topic's (per projection): order is per partition, so the
// busiest partition's worker sets the pace of a backlog.
type PartShare struct {
	Partition string  `json:"partition"` // projection/topic/partition
	Events    int64   `json:"events"`
	Share     float64 `json:"share"`
}

// partShares turns the projector's applied offsets (offset + 1 per
// "projection/topic/partition") into shares of each projection's topic.
func partShares(parts map[string]int64) []PartShare {
	totals := map[string]int64{}
	for k, n := range parts {
		totals[k[:strings.LastIndex(k, "/")]] += n
	}
	var out []PartShare
	for k, n := range parts {
		ps := PartShare{Partition: k, Events: n}
		if t := totals[k[:strings.LastIndex(k, "/")]]; t > 0 {
			ps.Share = float64(n) / float64(t)
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b PartShare) int { return strings.Compare(a.Partition, b.Partition) })
	return out
}
