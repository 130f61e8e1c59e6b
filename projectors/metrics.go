package projectors

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-dev/reel/internal/retry"
	"github.com/reel-dev/reel/projectors/store"
)

// Metrics are the projector's Prometheus metrics. Create them with
// NewMetrics on the registry you expose; nothing is registered globally.
type Metrics struct {
	events        *prometheus.CounterVec
	rows          *prometheus.CounterVec
	batches       *prometheus.CounterVec
	batchEvents   *prometheus.HistogramVec
	groupBatches  *prometheus.HistogramVec
	flushSeconds  *prometheus.HistogramVec
	insertSeconds *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	parked        *prometheus.CounterVec
	position      *prometheus.GaugeVec
	lastEventTs   *prometheus.GaugeVec
	paused        *prometheus.CounterVec
	pending       *prometheus.GaugeVec
	buffered      *prometheus.GaugeVec
	evicted       *prometheus.CounterVec
	stateLoads    *prometheus.CounterVec
	loadSeconds   *prometheus.HistogramVec
	claims        *prometheus.CounterVec
	fenced        *prometheus.CounterVec
	stopped       *prometheus.CounterVec
	clickhouse    *retry.Metrics
}

// NewMetrics creates the metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_events_total",
			Help: "Events applied by the projection."}, []string{"projection"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_rows_inserted_total",
			Help: "Rows inserted into ClickHouse, per table."}, []string{"projection", "table"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_batches_total",
			Help: "Batches made durable."}, []string{"projection"}),
		batchEvents: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "reel_projector_batch_events",
			Help: "Events per flushed batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}, []string{"projection"}),
		groupBatches: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "reel_projector_group_batches",
			Help: "Batches (of as many partitions) made durable together by one group commit: one insert per table for all.", Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32}}, []string{"projection"}),
		flushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "reel_projector_flush_duration_seconds",
			Help: "Time to make one batch durable (all tables and checkpoints).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"projection"}),
		insertSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "reel_projector_insert_duration_seconds",
			Help: "ClickHouse insert latency per table (the partition's checkpoints: table " + store.CheckpointsTable + ").", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"projection", "table"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_retries_total",
			Help: "ClickHouse operations retried after a failure."}, []string{"projection"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_parked_events_total",
			Help: "Events sent to the parked table, by reason."}, []string{"projection", "reason"}),
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reel_projector_applied_offset",
			Help: "Highest offset durable in ClickHouse, per partition."}, []string{"projection", "topic", "partition"}),
		lastEventTs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reel_projector_last_event_timestamp_seconds",
			Help: "Kafka timestamp of the newest applied event, per partition."}, []string{"projection", "topic", "partition"}),
		paused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_fetch_pauses_total",
			Help: "Times a partition's fetching was paused because its worker fell behind (backpressure)."}, []string{"projection"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reel_projector_pending_bytes",
			Help: "Estimated bytes of fetched records waiting for the partitions' workers (bounded by maxPendingBytes, plus one fetch share a partition)."}, []string{"projection"}),
		buffered: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reel_projector_fetch_buffered_bytes",
			Help: "Bytes of records the Kafka client fetched and holds until the next poll."}, []string{"projection"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_state_evictions_total",
			Help: "Aggregate states forgotten by a partition's state cache past its byte bound (read back from ClickHouse when needed)."}, []string{"projection"}),
		stateLoads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_state_loads_total",
			Help: "Aggregates whose state the partition's state cache did not know and read from ClickHouse, by result (absent: a new aggregate, a query a complete cache saves)."}, []string{"projection", "result"}),
		loadSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "reel_projector_state_load_duration_seconds",
			Help: "Time a partition's worker waited for one read of aggregate states from ClickHouse (the cache did not know them).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"projection"}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_partition_claims_total",
			Help: "Partitions claimed on assignment (each claim fences the partition's earlier owners)."}, []string{"projection"}),
		fenced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_fenced_total",
			Help: "Times this member found a partition claimed by another member and stopped writing it."}, []string{"projection"}),
		stopped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reel_projector_partitions_stopped_total",
			Help: "Partitions stopped by a permanent ClickHouse error (named in /readyz) instead of retrying forever."}, []string{"projection"}),
		clickhouse: retry.NewMetrics(reg),
	}
	if reg != nil {
		reg.MustRegister(m.stopped, m.events, m.rows, m.batches, m.batchEvents, m.groupBatches, m.flushSeconds, m.insertSeconds, m.retries, m.parked, m.position, m.lastEventTs, m.paused, m.pending, m.buffered, m.evicted, m.stateLoads, m.loadSeconds, m.claims, m.fenced)
	}
	return m
}

// Forget deletes every series of projection, whose runner of these
// metrics' generation has stopped (the vectors are shared by all
// projections of a generation).
func (m *Metrics) Forget(projection string) {
	l := prometheus.Labels{"projection": projection}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.events, m.rows, m.batches, m.batchEvents, m.groupBatches, m.flushSeconds, m.insertSeconds, m.retries,
		m.parked, m.position, m.lastEventTs, m.paused, m.pending, m.buffered, m.evicted, m.stateLoads, m.loadSeconds, m.claims, m.fenced,
	} {
		v.DeletePartialMatch(l)
	}
}
