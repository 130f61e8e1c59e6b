package loadtest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-dev/reel/projectors/store"
)

func TestParseTop(t *testing.T) {
	out := []byte(`File: reel
Type: cpu
Time: 2026-11-30 14:00:00 UTC
Duration: 20s, Total samples = 9.50s (47.50%)
Showing nodes accounting for 6.20s, 65.26% of 9.50s total
Dropped 250 nodes (cum <= 0.05s)
      flat  flat%   sum%        cum   cum%
     1.50s 15.79% 15.79%      2.10s 22.11%  runtime.mallocgc
     0.40s  4.21% 20.00%      3.00s 31.58%  github.com/reel-dev/reel/projectors.(*batch).add
         0     0% 20.00%      1.20s 12.63%  net/http.(*conn).serve
`)
	total, rows := parseTop(out)
	if total != "9.50s" {
		t.Errorf("total = %q, want 9.50s", total)
	}
	if len(rows) != 3 {
		t.Fatalf("rows = %+v, want 3", rows)
	}
	want := FuncCost{Func: "github.com/reel-dev/reel/projectors.(*batch).add", Flat: "0.40s", FlatPct: 4.21, Cum: "3.00s", CumPct: 31.58}
	if rows[1] != want {
		t.Errorf("row 1 = %+v, want %+v", rows[1], want)
	}
	if rows[2].Flat != "0" || rows[2].CumPct != 12.63 {
		t.Errorf("row 2 = %+v", rows[2])
	}
}

func TestParseHWM(t *testing.T) {
	n, err := parseHWM([]byte("Name:\treel\nVmPeak:\t  900 kB\nVmHWM:\t  204800 kB\nVmRSS:\t 1000 kB\n"))
	if err != nil || n != 200<<20 {
		t.Errorf("parseHWM = %d, %v; want %d", n, err, 200<<20)
	}
	if _, err := parseHWM([]byte("Name:\treel\n")); err == nil {
		t.Error("status without VmHWM: no error")
	}
	// The test process itself has a peak.
	if n, err := readHWM(os.Getpid()); err != nil || n <= 0 {
		t.Errorf("readHWM(self) = %d, %v", n, err)
	}
}

func TestPhaseMemoryAndTargets(t *testing.T) {
	res := &Results{
		Timeline: []Sample{{Phase: "max", RSSMB: 100, HeapMB: 60}, {Phase: "max", RSSMB: 180, HeapMB: 90},
			{Phase: "raw consume"}, {Phase: "replay g2", RSSMB: 120, HeapMB: 70}},
		Projector:  Usage{Peaks: []ProcessPeak{{Process: "orders+seats, generation 1", PeakMB: 300}}},
		Peer:       Peer{Ran: true, Rate: rate(100000, 2*time.Second)},
		AppendOnly: AppendOnly{Events: 100000, Reel: rate(100000, time.Second)},
	}
	r := &run{res: res}
	r.finish()
	pm := res.Projector.PhaseMemory
	if len(pm) != 2 || pm[0].Phase != "max" || pm[0].Samples != 2 || pm[0].RSSMaxMB != 180 || pm[0].HeapMaxMB != 90 || pm[1].Phase != "replay g2" {
		t.Errorf("phase memory = %+v", pm)
	}
	if res.Projector.PeakRSSMB != 300 { // the kernel's peak beats the samples
		t.Errorf("peak RSS = %v, want 300", res.Projector.PeakRSSMB)
	}
	if res.AppendOnly.Ratio != 2 {
		t.Errorf("append-only ratio = %v, want 2", res.AppendOnly.Ratio)
	}
	target := func(prefix string) (met, ok bool) {
		for _, tg := range res.Targets {
			if strings.HasPrefix(tg.Name, prefix) {
				return tg.Met, true
			}
		}
		return false, false
	}
	if m, ok := target("projector peak RSS"); !ok || m {
		t.Errorf("RSS target: present %v met %v; want present and missed (300 MB)", ok, m)
	}
	if m, ok := target("Reel append-only"); !ok || !m {
		t.Errorf("append-only target: present %v met %v; want met (2×)", ok, m)
	}
	md := markdown(res, nil)
	for _, s := range []string{"### Memory per phase", "| max | 2 | 180 | 90 |", "| orders+seats, generation 1 |  | 300 |",
		"### Equal work: Reel append-only vs the peer", "| **Reel / peer** | **2.00** |", "## Where the time goes", "| < 256 MB | 300 MB"} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q", s)
		}
	}
}

func TestPoolDSNAndShortFunc(t *testing.T) {
	got := poolDSN("http://127.0.0.1:8123/db?dial_timeout=1s")
	if !strings.Contains(got, "max_open_conns=64") || !strings.Contains(got, "max_idle_conns=64") || !strings.Contains(got, "dial_timeout=1s") {
		t.Errorf("poolDSN = %q", got)
	}
	if got := poolDSN("http://h/db?max_open_conns=5"); got != "http://h/db?max_open_conns=5" {
		t.Errorf("poolDSN overrode the DSN's bound: %q", got)
	}
	if got := shortFunc("kgo.ensureLen[go.shape.[]kgo.Record,go.shape.struct { Key []uint8 }]"); got != "kgo.ensureLen[…]" {
		t.Errorf("shortFunc = %q", got)
	}
}

func TestMergeParts(t *testing.T) {
	// Partition 1 moved from the first replica to the second: counted once, at its newest position.
	n := mergeParts([]map[string]int64{{"orders/t/0": 10, "orders/t/1": 5}, {"orders/t/1": 8, "seats/s/0": 3}})
	if n != 10+8+3 {
		t.Errorf("mergeParts = %d, want 21", n)
	}
}

// TestProfiles takes a CPU profile through the child's start/stop
// endpoints and an allocation profile pair, and summarizes them with go
// tool pprof: the busy function must top the CPU list, the allocating one
// the alloc_space list.
func TestProfiles(t *testing.T) {
	mux := http.NewServeMux()
	serveProfiling(mux)
	mux.HandleFunc("/debug/pprof/allocs", func(w http.ResponseWriter, _ *http.Request) { _ = pprof.Lookup("allocs").WriteTo(w, 0) })
	var calls float64 // each /stats answer: 100 more events, 2 more inserts taking 0.5 s
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		calls++
		_ = json.NewEncoder(w).Encode(childStats{
			Counts: map[string]float64{"reel_projector_events_total": 100 * calls},
			Hist:   map[string][2]float64{"reel_projector_insert_duration_seconds": {2 * calls, 0.5 * calls}},
		})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dir := t.TempDir()
	r := &run{dir: dir, res: &Results{}, child: &projectorProc{addr: strings.TrimPrefix(srv.URL, "http://")}}

	stop := r.startProfile(t.Context(), "test phase", "test")
	if err := r.child.fetch(t.Context(), http.MethodPost, "/profile/cpu/start", ""); err == nil {
		t.Error("a second CPU profile started while one runs")
	}
	busyProfiled()
	allocProfiled()
	stop()
	if len(r.res.Profiles) != 1 || r.res.Profiles[0].Error != "" {
		t.Fatalf("profiles = %+v", r.res.Profiles)
	}
	if w := r.res.Profiles[0].Waits; w.Events != 100 || w.Inserts != 2 || w.InsertSeconds != 0.5 || w.Seconds <= 0 {
		t.Errorf("waits over the phase = %+v; want the deltas of two /stats answers", w)
	}
	pp := &r.res.Profiles[0]
	for _, f := range []string{pp.CPUFile, pp.AllocBase, pp.AllocFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gzip.NewReader(bytes.NewReader(b)); err != nil {
			t.Errorf("%s: not a gzipped profile: %v", filepath.Base(f), err)
		}
	}
	if err := r.child.fetch(t.Context(), http.MethodPost, "/profile/cpu/stop", ""); err == nil {
		t.Error("stop without a running profile: no error")
	}
	pp.summarize()
	if pp.Error != "" {
		t.Fatalf("summarize: %s", pp.Error)
	}
	if !anyFunc(pp.CPUFlat, "busyProfiled") || !anyFunc(pp.AllocFlat, "allocProfiled") || len(pp.CPUCum) == 0 || len(pp.AllocCum) == 0 {
		t.Errorf("cpu flat %+v\nalloc flat %+v", pp.CPUFlat, pp.AllocFlat)
	}
	if len(pp.Stages) != len(stages) {
		t.Fatalf("stages = %+v", pp.Stages)
	}
	for _, g := range pp.Stages {
		if g.CPUPct < 0 || g.CPUPct > 100 || g.AllocPct < 0 || g.AllocPct > 100 {
			t.Errorf("stage %+v: share out of range", g)
		}
	}
	if v, pct := parseShown([]byte("Active filters:\n   focus=x\nShowing nodes accounting for 1.42s, 20.17% of 7.04s total\n")); v != "1.42s" || pct != 20.17 {
		t.Errorf("parseShown = %q, %v", v, pct)
	}
	md := markdown(r.res, nil)
	if !strings.Contains(md, "### test phase") || !strings.Contains(md, "busyProfiled") || !strings.Contains(md, "| GC background marking |") {
		t.Errorf("report lacks the profile tables:\n%s", md)
	}
}

var sink []byte

// busyProfiled burns a fixed amount of CPU (about 0.4 s on an idle core):
// fixed work, not a wall-clock span, so that a busy machine that gives the
// test little CPU makes it slower rather than leaves the profile without
// samples of it.
func busyProfiled() {
	x := 0
	for range 600 {
		for i := 0; i < 1e6; i++ {
			x += i * i
		}
	}
	sink = []byte{byte(x)}
}

func allocProfiled() {
	for i := 0; i < 2000; i++ {
		sink = make([]byte, 64<<10)
	}
	_, _ = io.Discard.Write(sink)
}

func anyFunc(rows []FuncCost, name string) bool {
	for _, r := range rows {
		if strings.Contains(r.Func, name) {
			return true
		}
	}
	return false
}

func TestScaleConfig(t *testing.T) {
	c := Config{Brokers: []string{"x"}, DSN: "y"}
	c.defaults()
	if len(c.ScaleHistory) != 3 || c.ScaleHistory[2] != 10_000_000 || len(c.ScalePartitions) != 3 || c.ScaleEvents != 1_000_000 {
		t.Errorf("scale defaults = %v %v %d", c.ScaleHistory, c.ScalePartitions, c.ScaleEvents)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	c.ScaleHistory = []int64{5000, 1000}
	c.ScaleReplicas = []int{0}
	err := c.validate()
	if err == nil || !strings.Contains(err.Error(), "ascending") || !strings.Contains(err.Error(), "replicas 0") {
		t.Errorf("validate = %v, want the history order and the replicas refused", err)
	}
}

// TestChildConfigRunsAppendOnly: the projector process can run the
// append-only projection of the equal-work comparison beside the demo's.
func TestChildConfigRunsAppendOnly(t *testing.T) {
	cfg, err := childConfig("127.0.0.1:1", "http://127.0.0.1:1/db", "http://127.0.0.1:2", "orders,seats,"+appendName, 100,
		func(k string) string { return map[string]string{"REEL_PROJECTOR_STATE_CACHE_BYTES": "1048576"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Projector.StateCacheBytes != 1<<20 {
		t.Fatalf("REEL_PROJECTOR_STATE_CACHE_BYTES not applied: %d", cfg.Projector.StateCacheBytes)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPartShares(t *testing.T) {
	got := partShares(map[string]int64{"orders/o/0": 30, "orders/o/1": 10, "seats/s/0": 5})
	want := []PartShare{{"orders/o/0", 30, 0.75}, {"orders/o/1", 10, 0.25}, {"seats/s/0", 5, 1}}
	if !slices.Equal(got, want) {
		t.Errorf("partShares = %+v, want %+v", got, want)
	}
}

// TestSumSeries: histograms and counters are summed over their series,
// keyed apart by a result label and by the checkpoints' table label.
func TestSumSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	ins := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ins"}, []string{"projection", "table"})
	loads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loads"}, []string{"projection", "result"})
	reg.MustRegister(ins, loads)
	ins.WithLabelValues("orders", "orders_current").Observe(1)
	ins.WithLabelValues("seats", "seat_availability").Observe(2)
	ins.WithLabelValues("orders", store.CheckpointsTable).Observe(0.5)
	loads.WithLabelValues("orders", "found").Add(3)
	loads.WithLabelValues("seats", "found").Add(4)
	loads.WithLabelValues("orders", "absent").Add(5)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hist, counts := map[string][2]float64{}, map[string]float64{}
	for _, mf := range mfs {
		sumSeries(mf, hist, counts)
	}
	wantHist := map[string][2]float64{"ins": {2, 3}, "ins/" + store.CheckpointsTable: {1, 0.5}}
	wantCounts := map[string]float64{"loads/found": 7, "loads/absent": 5}
	if !maps.Equal(hist, wantHist) || !maps.Equal(counts, wantCounts) {
		t.Errorf("sumSeries: histograms %v counters %v; want %v %v", hist, counts, wantHist, wantCounts)
	}
}

// TestCPUSampler: a second of a spinning goroutine is charged to the load
// test's own process, within the machine's busy time, per phase; the table
// puts what the named processes did not use under other.
func TestCPUSampler(t *testing.T) {
	s := newCPUSampler(map[string]int{"clickhouse": os.Getppid()})
	s.sample("idle", nil)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	time.Sleep(time.Second)
	s.sample("spin", nil)
	close(stop)
	res := s.result()
	if len(res) != 1 || res[0].Phase != "spin" {
		t.Fatalf("phases %+v, want one: spin (the first sample only starts the count)", res)
	}
	p := res[0]
	// Shares of the cores depend on the machine's other load; what the
	// sampler charges must be the process's own CPU time, and within the
	// machine's.
	if p.Procs[cpuDriver] <= 0 || p.Busy+0.05 < p.Procs[cpuDriver] || p.Seconds < 0.9 {
		t.Errorf("spin: load test %.2f cores, machine busy %.2f over %.2f s; want > 0 and within the machine's", p.Procs[cpuDriver], p.Busy, p.Seconds)
	}
	if _, ok := p.Procs["clickhouse"]; !ok {
		t.Errorf("watched process missing: %+v", p.Procs)
	}
	var b strings.Builder
	writeCPU(func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }, &Results{Machine: Machine{CPUs: 2},
		CPU: []PhaseCPU{{Phase: "max", Seconds: 20, Busy: 1.9, Steal: 0.1, Procs: map[string]float64{cpuProjector: 0.5, "clickhouse": 1.0, cpuDriver: 0.3}}}})
	for _, want := range []string{"| phase | s | busy | steal | projector | clickhouse | load test | other |", "| max | 20 | 1.90 | 0.10 | 0.50 | 1.00 | 0.30 | 0.10 |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("CPU table lacks %q:\n%s", want, b.String())
		}
	}
}
