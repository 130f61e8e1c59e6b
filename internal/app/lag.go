package app

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// lagCollector exports lag per projection × generation × topic × partition
// from a snapshot the supervisor refreshes every generationPoll. Scrapes
// never wait for Kafka or ClickHouse.
//
// Lag is measured against ClickHouse, not the group's committed offsets:
// the checkpoints are what is durably applied (committed offsets are a
// hint), and every replica writes them, so any replica reports the whole
// group's lag.
type lagCollector struct {
	offsets, seconds, parked, gens *prometheus.Desc

	// The ClickHouse reads, store.QueryProgress and store.ParkedCounts
	// (replaced in tests).
	progress     func(ctx context.Context, conn driver.Conn, p *projection.Projection, gen int) ([]store.PartitionProgress, error)
	parkedCounts func(ctx context.Context, conn driver.Conn, projection string, gen int) (aggregates, events int, err error)

	mu   sync.Mutex
	snap []prometheus.Metric
}

func newLagCollector() *lagCollector {
	pl := []string{"projection", "generation", "topic", "partition"}
	return &lagCollector{
		offsets: prometheus.NewDesc("reel_projector_lag_offsets",
			"Records in Kafka not yet durable in ClickHouse (end offset minus applied offset + 1).", pl, nil),
		seconds: prometheus.NewDesc("reel_projector_lag_seconds",
			"Age of the newest applied event while the partition is behind; 0 when caught up.", pl, nil),
		parked: prometheus.NewDesc("reel_projector_parked_aggregates",
			"Aggregates with unresolved parked events.", []string{"projection", "generation"}, nil),
		gens: prometheus.NewDesc("reel_projector_generation_info",
			"Generations this process runs, by status (always 1).", []string{"projection", "generation", "status"}, nil),
		progress:     store.QueryProgress,
		parkedCounts: store.ParkedCounts,
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.offsets
	ch <- c.seconds
	ch <- c.parked
	ch <- c.gens
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	snap := c.snap
	c.mu.Unlock()
	for _, m := range snap {
		ch <- m
	}
}

// lagSource reads end offsets from Kafka.
type lagSource struct {
	cl  *kgo.Client
	adm *kadm.Client
}

func newLagSource(kopts []kgo.Opt) (*lagSource, error) {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, err
	}
	return &lagSource{cl: cl, adm: kadm.NewClient(cl)}, nil
}

func (l *lagSource) close() { l.cl.Close() }

// refresh rebuilds the snapshot. A source that fails keeps its series out
// of the snapshot (absent, not stale) and is logged at debug level: lag is
// also visible through reel_projector_applied_offset.
func (c *lagCollector) refresh(ctx context.Context, s *Supervisor, src *lagSource) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out []prometheus.Metric
	ends := map[string]kadm.ListedOffsets{}
	now := time.Now()
	for _, gr := range s.running() {
		g := strconv.Itoa(gr.gen)
		out = append(out, prometheus.MustNewConstMetric(c.gens, prometheus.GaugeValue, 1, gr.p.Name, g, gr.status))
		// Progress before the parked counts: a batch's parked rows are
		// durable before its position shows it, so a snapshot that shows
		// a partition caught up also counts what it parked on the way.
		prog, progErr := c.progress(ctx, s.conn, gr.p, gr.gen)
		if a, _, err := c.parkedCounts(ctx, s.conn, gr.p.Name, gr.gen); err == nil {
			out = append(out, prometheus.MustNewConstMetric(c.parked, prometheus.GaugeValue, float64(a), gr.p.Name, g))
		}
		if progErr != nil {
			s.log.Debug("lag: cannot read progress", "projection", gr.p.Name, "generation", gr.gen, "err", progErr)
			continue
		}
		applied := map[string]map[int32]store.PartitionProgress{}
		for _, pp := range prog {
			if applied[pp.Topic] == nil {
				applied[pp.Topic] = map[int32]store.PartitionProgress{}
			}
			applied[pp.Topic][pp.Partition] = pp
		}
		for _, topic := range gr.p.Topics {
			end, ok := ends[topic]
			if !ok {
				var err error
				end, err = src.adm.ListEndOffsets(ctx, topic)
				if err == nil {
					err = end.Error()
				}
				if err != nil {
					s.log.Debug("lag: cannot list end offsets", "topic", topic, "err", err)
					continue
				}
				ends[topic] = end
			}
			end.Each(func(o kadm.ListedOffset) {
				pp, ok := applied[topic][o.Partition]
				lag := store.Lag(o.Offset, -1, 0)
				if ok {
					lag = pp.Lag(o.Offset)
				}
				part := strconv.Itoa(int(o.Partition))
				out = append(out, prometheus.MustNewConstMetric(c.offsets, prometheus.GaugeValue, float64(lag), gr.p.Name, g, topic, part))
				switch {
				case lag == 0:
					out = append(out, prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, 0, gr.p.Name, g, topic, part))
				case ok && !pp.EventTime.IsZero():
					out = append(out, prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, max(now.Sub(pp.EventTime).Seconds(), 0), gr.p.Name, g, topic, part))
				}
			})
		}
	}
	c.mu.Lock()
	c.snap = out
	c.mu.Unlock()
}
