package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	dto "github.com/prometheus/client_model/go"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/registry"
	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// ChildArg is the first argument that makes `reel loadtest` run as the
// projector under test instead of the driver. The driver starts the
// projector as its own process so that its CPU time and memory are the
// projector's alone, and so that a CPU profile shows only projector work.
const ChildArg = "projector-child"

// childStats is what the projector process reports on /stats.
type childStats struct {
	Applied int64            `json:"applied"` // Σ over partitions of applied offset + 1
	PerProj map[string]int64 `json:"per_projection"`
	Rows    map[string]int64 `json:"rows"`       // rows inserted per projection/table
	Parts   map[string]int64 `json:"partitions"` // applied offset + 1 per projection/topic/partition
	// Hist holds count and sum of each reel_projector_* histogram and
	// Counts each counter, summed over their series; a "result" label is
	// kept ("reel_projector_state_loads_total/absent"), and the table label
	// of the checkpoints ("…_insert_duration_seconds/" + store.CheckpointsTable).
	Hist      map[string][2]float64 `json:"histograms"`
	Counts    map[string]float64    `json:"counters"`
	Gauges    map[string]float64    `json:"gauges"` // the byte gauges, summed over their series
	HeapAlloc uint64                `json:"heap_alloc"`
	HeapSys   uint64                `json:"heap_sys"`
	NumGC     uint32                `json:"num_gc"`
	Ready     bool                  `json:"ready"`
}

// ChildMain runs the projector process: the named projections (topics
// renamed with the run's prefix) as generation -gen, until ctx ends. It
// serves /stats and /debug/pprof on -listen and prints "listening <addr>"
// on stdout once it does.
func ChildMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reel loadtest "+ChildArg, flag.ContinueOnError)
	brokers := fs.String("brokers", "", "Kafka brokers")
	dsn := fs.String("dsn", "", "ClickHouse DSN (with the load test's database)")
	reg := fs.String("registry", "", "schema registry URL (Confluent framing)")
	projs := fs.String("projections", "orders,seats", "projections to run")
	prefix := fs.String("topic-prefix", "", "prefix of the run's topics")
	gen := fs.Int("gen", 1, "generation")
	replay := fs.Bool("replay", false, "replay (rebuild) mode: WithoutViews, Replay(true)")
	batch := fs.Int("batch", 5000, "BatchEvents")
	listen := fs.String("listen", "127.0.0.1:0", "stats and pprof address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The flags fill a config, as a file would `reel project`'s: one place
	// (app.RunnerOptions) makes runner options of it.
	cfg, err := childConfig(*brokers, *dsn, *reg, *projs, *batch, os.Getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	parts, err := app.Open(ctx, &cfg)
	if err != nil {
		return err
	}
	defer parts.Conn.Close()
	promReg := prometheus.NewRegistry()
	metrics := projectors.NewMetrics(promReg)
	var runners []*projectors.Runner
	for _, p := range parts.Projections {
		prefixTopics(p, *prefix)
		opts := app.RunnerOptions(&cfg, *gen, parts.Kafka, log, metrics)
		if *replay {
			opts = append(opts, projectors.Replay(true), projectors.WithoutViews())
		}
		r, err := projectors.NewRunner(p, parts.Conn, parts.Codec, opts...)
		if err != nil {
			return err
		}
		runners = append(runners, r)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	serveProfiling(mux)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		st := childStats{PerProj: map[string]int64{}, Rows: map[string]int64{}, Parts: map[string]int64{}, Ready: true,
			Hist: map[string][2]float64{}, Counts: map[string]float64{}, Gauges: map[string]float64{}}
		mfs, _ := promReg.Gather()
		for _, mf := range mfs {
			sumSeries(mf, st.Hist, st.Counts)
			if strings.HasSuffix(mf.GetName(), "_bytes") && mf.GetType() == dto.MetricType_GAUGE {
				for _, m := range mf.GetMetric() {
					st.Gauges[mf.GetName()] += m.GetGauge().GetValue()
				}
			}
			if mf.GetName() == "reel_projector_rows_inserted_total" {
				for _, m := range mf.GetMetric() {
					l := labels(m)
					st.Rows[l["projection"]+"/"+l["table"]] += int64(m.GetCounter().GetValue())
				}
			}
			if mf.GetName() != "reel_projector_applied_offset" {
				continue
			}
			for _, m := range mf.GetMetric() {
				l := labels(m)
				n := int64(m.GetGauge().GetValue()) + 1
				st.Applied += n
				st.PerProj[l["projection"]] += n
				st.Parts[l["projection"]+"/"+l["topic"]+"/"+l["partition"]] = n
			}
		}
		for _, r := range runners {
			if r.Ready() != nil {
				st.Ready = false
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st.HeapAlloc, st.HeapSys, st.NumGC = ms.HeapAlloc, ms.HeapSys, ms.NumGC
		_ = json.NewEncoder(w).Encode(st)
	})
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	defer srv.Close()
	fmt.Printf("listening %s\n", l.Addr())

	var wg sync.WaitGroup
	errs := make(chan error, len(runners))
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// childConfig is the projector process's config: the demo's projections
// and the load test's append-only one (topics without the run's prefix).
// The runner settings come from the environment as for `reel project`
// (REEL_PROJECTOR_<KEY>), so a run can try other bounds without a rebuild.
func childConfig(brokers, dsn, reg, projs string, batch int, getenv func(string) string) (config.Config, error) {
	c, err := config.Load("", getenv)
	if err != nil {
		return config.Config{}, err
	}
	cfg := *c
	cfg.Kafka.Brokers = strings.Split(brokers, ",")
	cfg.ClickHouse.DSN = dsn
	cfg.SchemaRegistry.URL = reg
	cfg.Projector.Projections = strings.Split(projs, ",")
	cfg.Projector.BatchEvents = batch
	cfg.ProgramCatalog, cfg.GoProjections, cfg.Bindings = events.FS(), append(registry.All(), appendProjection("")), events.Bindings()
	return cfg, nil
}

// demoProjection returns a fresh value of the named projection reading the
// run's topics.
func demoProjection(name, prefix string) (*projection.Projection, error) {
	if name == appendName {
		return appendProjection(prefix), nil
	}
	p, err := registry.Get(name)
	if err != nil {
		return nil, err
	}
	prefixTopics(p, prefix)
	return p, nil
}

// prefixTopics makes the fresh projection p read the run's topics.
func prefixTopics(p *projection.Projection, prefix string) {
	topics := make([]string, len(p.Topics))
	for i, t := range p.Topics {
		topics[i] = prefix + t
	}
	p.Topics = topics
}

// labels returns a series' labels by name.
func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}

// sumSeries adds a metric family's series into hist (histograms: count,
// sum) or counts (counters), keyed by the family's name plus its "result"
// label, or its "table" label when that is the checkpoints.
func sumSeries(mf *dto.MetricFamily, hist map[string][2]float64, counts map[string]float64) {
	for _, m := range mf.GetMetric() {
		key := mf.GetName()
		l := labels(m)
		if r, ok := l["result"]; ok {
			key += "/" + r
		}
		if l["table"] == store.CheckpointsTable {
			key += "/" + store.CheckpointsTable
		}
		if h := m.GetHistogram(); h != nil {
			v := hist[key]
			v[0] += float64(h.GetSampleCount())
			v[1] += h.GetSampleSum()
			hist[key] = v
		}
		if c := m.GetCounter(); c != nil {
			counts[key] += c.GetValue()
		}
	}
}
