package loadtest

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writeReport writes results.json, the plots and report.md into dir.
func writeReport(dir string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return err
	}
	var plots []string
	for _, p := range []struct {
		file string
		fn   func(*Results) (*plot.Plot, error)
	}{{"throughput.png", plotThroughput}, {"freshness.png", plotFreshness}, {"replay.png", plotReplay}, {"resources.png", plotResources}} {
		pl, err := p.fn(res)
		if err != nil || pl == nil {
			continue
		}
		if err := pl.Save(8*vg.Inch, 4*vg.Inch, filepath.Join(dir, p.file)); err == nil {
			plots = append(plots, p.file)
		}
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(markdown(res, plots)), 0o644)
}

// throughput over time: per-second produce and apply rates.
func plotThroughput(res *Results) (*plot.Plot, error) {
	if len(res.Timeline) < 2 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Throughput over time (events/s, 1 s buckets)"
	p.X.Label.Text = "seconds since start"
	p.Y.Label.Text = "events/s"
	var prod, appl plotter.XYs
	for i := 1; i < len(res.Timeline); i++ {
		a, b := res.Timeline[i-1], res.Timeline[i]
		dt := b.T - a.T
		prod = append(prod, plotter.XY{X: b.T, Y: float64(b.Produced-a.Produced) / dt})
		if b.Generation == a.Generation && b.Applied >= a.Applied {
			appl = append(appl, plotter.XY{X: b.T, Y: float64(b.Applied-a.Applied) / dt})
		}
	}
	if err := plotutil.AddLines(p, "produced", prod, "applied by the projector (g1 live, g2 replay)", appl); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	addPhaseMarks(p, res)
	return p, nil
}

// addPhaseMarks draws a vertical line at the start of each phase.
func addPhaseMarks(p *plot.Plot, res *Results) {
	last := ""
	var ymax float64 = p.Y.Max
	for _, s := range res.Timeline {
		if s.Phase == last {
			continue
		}
		last = s.Phase
		l, err := plotter.NewLine(plotter.XYs{{X: s.T, Y: 0}, {X: s.T, Y: ymax}})
		if err != nil {
			continue
		}
		l.Color = color.Gray{Y: 180}
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(l)
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: s.T, Y: ymax * 0.97}}, Labels: []string{s.Phase}})
		if err == nil {
			lb.TextStyle[0].Font.Size = vg.Points(7)
			p.Add(lb)
		}
	}
}

// freshness percentiles per load level, as grouped bars.
func plotFreshness(res *Results) (*plot.Plot, error) {
	if len(res.Freshness) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Freshness: produced → visible in orders_current (ms)"
	p.Y.Label.Text = "milliseconds"
	var p50, p95, p99 plotter.Values
	var names []string
	for _, l := range res.Freshness {
		p50, p95, p99 = append(p50, l.P50), append(p95, l.P95), append(p99, l.P99)
		names = append(names, fmt.Sprintf("%.0f%% (%.0f ev/s)", l.Fraction*100, l.Produced.PerSec))
	}
	w := vg.Points(18)
	for i, v := range []plotter.Values{p50, p95, p99} {
		bars, err := plotter.NewBarChart(v, w)
		if err != nil {
			return nil, err
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(i-1)
		p.Add(bars)
		p.Legend.Add([]string{"p50", "p95", "p99"}[i], bars)
	}
	target, _ := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 1000}, {X: float64(len(names)) - 0.5, Y: 1000}})
	target.Color = color.RGBA{R: 200, A: 255}
	target.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(target)
	p.Legend.Add("1 s target", target)
	p.Legend.Top = true
	p.Legend.Left = true
	p.NominalX(names...)
	p.Y.Min = 0
	return p, nil
}

// replay progress: fraction of the history applied by generation 2.
func plotReplay(res *Results) (*plot.Plot, error) {
	if len(res.ReplayProg) < 2 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Full replay into generation 2: %d events, %.0f events/s", res.Replay.Events, res.Replay.PerSec)
	p.X.Label.Text = "seconds since the rebuild started"
	p.Y.Label.Text = "% of history applied"
	var xy plotter.XYs
	for _, pt := range res.ReplayProg {
		xy = append(xy, plotter.XY{X: pt.T, Y: pt.Fraction * 100})
	}
	if err := plotutil.AddLinePoints(p, "generation 2", xy); err != nil {
		return nil, err
	}
	p.Y.Min, p.Y.Max = 0, 105
	return p, nil
}

// resources: projector CPU (cores) and RSS over time.
func plotResources(res *Results) (*plot.Plot, error) {
	if len(res.Timeline) < 2 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Projector process: CPU (cores × 100) and memory (MB)"
	p.X.Label.Text = "seconds since start"
	var cpu, rss, heap plotter.XYs
	for _, s := range res.Timeline {
		if s.RSSMB == 0 {
			continue
		}
		cpu = append(cpu, plotter.XY{X: s.T, Y: s.CPU * 100})
		rss = append(rss, plotter.XY{X: s.T, Y: s.RSSMB})
		heap = append(heap, plotter.XY{X: s.T, Y: s.HeapMB})
	}
	if len(cpu) == 0 {
		return nil, nil
	}
	if err := plotutil.AddLines(p, "CPU % of one core", cpu, "RSS MB", rss, "Go heap MB", heap); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	return p, nil
}

func markdown(res *Results, plots []string) string {
	var b strings.Builder
	f := printf(func(format string, a ...any) { fmt.Fprintf(&b, format, a...) })
	f("# Reel load test — %s\n\n", res.Started.Format("2006-01-02 15:04:05 MST"))
	f("Machine: %d CPUs (shared: absolute numbers are noisy, compare the ratios), load average at start %s; %s; ClickHouse %s (embedded, reel-chdb); Kafka %s.\n\n",
		res.Machine.CPUs, res.Machine.LoadAvg, res.Machine.GoVersion, res.Machine.ClickHouse, res.Machine.Brokers)
	f("Projections under test: %s (one projector process, %d partitions per topic, batch %d). Event mix: shop saga + seats, %d aggregate slots, Zipf s=%.2f.\n\n",
		strings.Join(res.Config.Projections, ", "), res.Config.Partitions, res.Config.Batch, res.Config.Aggregates, res.Config.ZipfS)

	f("## Targets\n\n| | target | measured | |\n|---|---|---|---|\n")
	for _, t := range res.Targets {
		mark := "✅ met"
		if !t.Met {
			mark = "❌ missed"
		}
		f("| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Value, mark)
	}
	f("\n## Headline figures\n\n| figure | events/s | ratio |\n|---|---:|---|\n")
	f("| produce (max phase) | %.0f | %.2f× the projector's live rate |\n", res.Produce.PerSec, res.Ratios.ProduceOverProject)
	f("| projector, live, producer flat out (steady window) | %.0f | the max rate |\n", res.LiveMax.PerSec)
	f("| projector draining the backlog alone (%d events) | %.0f | |\n", res.Drain.Events, res.Drain.PerSec)
	f("| raw consume (franz-go group consumer, no processing) | %.0f | |\n", res.RawConsume.PerSec)
	f("| raw insert (clickhouse-go batches of the same rows, events/s equivalent) | %.0f | |\n", res.RawInsert.EventsPerSec)
	f("| **projector / min(raw)** | %.0f / %.0f (%s) | **%.0f %%** |\n", res.Ratios.ProjectorRate, res.Ratios.MinRaw, res.Ratios.MinRawIs, 100*res.Ratios.ProjectorOverRaw)
	f("| full replay into generation 2 | %.0f | **%.2f×** live max, %.1f× the half-max level |\n", res.Replay.PerSec, res.Ratios.ReplayOverLive, res.Ratios.ReplayOverHalf)
	if res.Peer.Ran {
		f("| peer: %s | %.0f | Reel / peer = **%.2f** |\n", res.Peer.Name, res.Peer.Rate.PerSec, res.Peer.Ratio)
	}
	if res.AppendOnly.Reel.PerSec > 0 {
		f("| Reel append-only projection of the shop topic (the peer's work) | %.0f | Reel / peer = **%.2f** on equal work |\n", res.AppendOnly.Reel.PerSec, res.AppendOnly.Ratio)
	}
	f("\n")
	for _, p := range plots {
		f("![%s](%s)\n\n", strings.TrimSuffix(p, ".png"), p)
	}

	f("## Freshness (produce → visible via SQL in the `orders_current` view)\n\n")
	f("| level | target ev/s | produced ev/s | samples | p50 ms | p95 ms | p99 ms | max ms | probe query p50 ms | projector CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range res.Freshness {
		f("| %.0f %% | %.0f | %.0f | %d | %.0f | %.0f | %.0f | %.0f | %.1f | %.2f |\n", l.Fraction*100, l.TargetRate, l.Produced.PerSec, l.Samples, l.P50, l.P95, l.P99, l.Max, l.ProbeP50, l.CPU)
	}
	f("\nMethod: the generator stamps every event (`OccurredAt`, strictly increasing per order) and remembers, for about 50 events/s that the orders projection turns into a new current row, the time just before `Produce`. A prober queries the stable view every %s — `SELECT order_id, max(updated_at) FROM orders_current WHERE order_id IN (…pending…) GROUP BY order_id` — and a sample is visible once its order's `updated_at` reaches its stamp. Freshness = time of the answer that first showed it − time before `Produce`: an upper bound that includes Kafka's produce acknowledgement, the projector's flush interval (200 ms) and up to one probe round.\n\n", probeEvery)
	for _, l := range res.Freshness {
		f("### Waits at %.0f %% of the max rate\n\n", l.Fraction*100)
		writeWaits(f, l.Waits, l.Server)
	}

	f("## Raw limits (same run, same servers)\n\n")
	f("Raw consume: %d records of the run's topics in %.2f s (first record → last; group join excluded).\n\n", res.RawConsume.Events, res.RawConsume.Seconds)
	f("Raw insert: the rows the projector wrote, read back (untimed) and inserted into a copy of each table (`CREATE TABLE … AS …`) with clickhouse-go `PrepareBatch`/`Append`/`Send`, %d rows per batch, one goroutine per partition. Events/s = 1 / Σ (rows per event ÷ rows/s).\n\n", res.Config.Batch)
	f("| table | rows/event | rows inserted | s | rows/s |\n|---|---:|---:|---:|---:|\n")
	for _, t := range res.RawInsert.Tables {
		f("| %s | %.2f | %d | %.2f | %.0f |\n", t.Table, t.RowsPerEv, t.Rows, t.Seconds, t.RowsPerSec)
	}

	writeInsertCost(f, res)

	f("\n## Rebuild and cut-over\n\n")
	f("Full replay: generation 2 (new tables, consumer group from the earliest offset, `Replay(true)`, `WithoutViews()`) in a fresh projector process: %d events in %.2f s = %.0f events/s (from its first durable batch to the end of the history; projector CPU %.2f cores).\n\n",
		res.Replay.Events, res.Replay.Seconds, res.Replay.PerSec, res.Projector.CPUReplay)
	f("Cut-over: %s. Switch took **%.1f ms**; %d queries against the stable views by 2 loops — %d during the replay (paced: one per loop every %s, as dashboards would: unpaced, they compete with the replay for the same cores), %d flat out from 1 s before the switch to 2 s after — **%d failed**", res.Cutover.Method, res.Cutover.DurationMs, res.Cutover.Queries, res.Cutover.PacedQueries, hammerPace, res.Cutover.Queries-res.Cutover.PacedQueries, res.Cutover.Failed)
	if res.Cutover.FirstError != "" {
		f(" (first: `%s`)", res.Cutover.FirstError)
	}
	f(". Check: %s.\n\n", res.Cutover.Verified)

	f("## Projector resources\n\nCPU during the max phase: %.2f cores (%.2f ms CPU per 1000 events); RSS max %.0f MB; Go heap max %.0f MB (heap from the OS %.0f MB).\n\n",
		res.Projector.CPUMax, res.Projector.CPUPerKEv, res.Projector.RSSMaxMB, res.Projector.HeapMaxMB, res.Projector.HeapSysMaxM)
	writeMemory(f, res)

	f("## Peer\n\n")
	if res.Peer.Ran {
		f("%s on the same shop topic: %d events in %.2f s = %.0f events/s. %s. Reel (projector rate %.0f/s over both topics, with state and exactly-once) / peer = %.2f.\n\n",
			res.Peer.Name, res.Peer.Rate.Events, res.Peer.Rate.Seconds, res.Peer.Rate.PerSec, res.Peer.What, res.Ratios.ProjectorRate, res.Peer.Ratio)
	} else {
		f("%s could not run: %s\n\n", res.Peer.Name, res.Peer.Reason)
	}
	for _, s := range res.Peer.Skipped {
		f("- not run: %s\n", s)
	}
	writeAppendOnly(f, res)

	writePartitions(f, res.Partitions)
	writeProfiles(f, res)
	if res.Scale != nil {
		writeScale(f, res.Scale)
	}
	if len(res.Notes) > 0 {
		f("\n## Notes\n\n")
		for _, n := range res.Notes {
			f("- %s\n", n)
		}
	}
	return b.String()
}

// printf is markdown's writer.
type printf func(format string, a ...any)

// writeMemory is the memory section: per phase and per process.
func writeMemory(f printf, res *Results) {
	limit := "no memory limit"
	if res.Config.MemoryLimitMB > 0 {
		limit = fmt.Sprintf("a pod's memory limit of %d MB (REEL_MEMORY_LIMIT, as the Helm chart passes it: Go's soft limit 64 MiB below it, at most 90 %% and at least half)", res.Config.MemoryLimitMB)
	}
	f("### Memory per phase\n\nThe projector processes ran with %s. ", limit)
	f("Peak RSS of the projector processes: **%.0f MB** (target < %d MB: a projector pod's bound). Sampled once a second (RSS from /proc/<pid>/stat, Go heap in use from runtime.ReadMemStats):\n\n", res.Projector.PeakRSSMB, rssBoundMB)
	f("| phase | samples | RSS max MB | Go heap max MB | records waiting for workers, max MB (estimated) | records held by the Kafka clients, max MB |\n|---|---:|---:|---:|---:|---:|\n")
	for _, m := range res.Projector.PhaseMemory {
		f("| %s | %d | %.0f | %.0f | %.1f | %.1f |\n", m.Phase, m.Samples, m.RSSMaxMB, m.HeapMaxMB, m.PendingMaxMB, m.BufferedMaxMB)
	}
	f("\nPeak RSS of each projector process over its life (the kernel's VmHWM, which also catches peaks between samples):\n\n| process | phases | peak RSS MB |\n|---|---|---:|\n")
	for _, p := range res.Projector.Peaks {
		f("| %s | %s | %.0f |\n", p.Process, strings.Join(p.Phases, ", "), p.PeakMB)
	}
	f("\n")
	if ph := res.Projector.PeakHeap; ph != nil {
		f("What the heap held at its highest sample (%.0f MB, %.0f s into the run, phase %s): `%s`, in use at the collection before it (%s). Open with `go tool pprof -sample_index=inuse_space -http=: %s`.\n\n",
			ph.HeapMB, ph.T, ph.Phase, filepath.Base(ph.File), orNone(ph.Total), filepath.Base(ph.File))
		if ph.Error != "" {
			f("Profile error: %s\n\n", ph.Error)
		}
		writeFuncCosts(f, "| function | in use (flat) | % | cum | cum % |", ph.Top)
	}
}

// writeAppendOnly is the equal-work comparison with the peer.
func writeAppendOnly(f printf, res *Results) {
	ao := res.AppendOnly
	f("\n### Equal work: Reel append-only vs the peer\n\n")
	f("The figures above compare Reel's demo projections (state, history, views) with the peer's plain copy. Here Reel does the peer's work: the projection `%s` copies every event of the shop topic (%d events) into one MergeTree table ordered by (order_id, _offset) — order_id and Reel's position columns, no state, no views — in a fresh projector process from the earliest offset, timed from its first durable batch to the end of the topic, as the peer is timed from its first row to the last.\n\n", appendName, ao.Events)
	f("| | events/s |\n|---|---:|\n| Reel append-only projection | %.0f |\n| peer (%s) | %.0f |\n| **Reel / peer** | **%.2f** |\n\n", ao.Reel.PerSec, res.Peer.Name, ao.Peer.PerSec, ao.Ratio)
}

// writeProfiles is "where the time goes": who used the machine's cores
// per phase, then the top functions of each profiled phase by CPU (flat
// and cumulative) and by bytes allocated.
func writeProfiles(f printf, res *Results) {
	pps := res.Profiles
	f("\n## Where the time goes (the machine's cores, projector profiles)\n\n")
	writeCPU(f, res)
	if len(pps) == 0 {
		f("No profiles were taken.\n\n")
		return
	}
	for _, pp := range pps {
		f("### %s\n\n", pp.Phase)
		f("CPU profile `%s` (%s sampled); allocations `%s` minus `%s` (%s allocated in the phase). Open with `go tool pprof -http=: <file>` (allocations: `-sample_index=alloc_space -base <base> <file>`).\n\n",
			filepath.Base(pp.CPUFile), orNone(pp.CPUTotal), filepath.Base(pp.AllocFile), filepath.Base(pp.AllocBase), orNone(pp.AllocTotal))
		if pp.Error != "" {
			f("Profile errors: %s\n\n", pp.Error)
		}
		writeWaits(f, pp.Waits, pp.Server)
		if len(pp.Stages) > 0 {
			f("By part of the pipeline (samples whose stack passes through it; the parts overlap — allocation and GC happen inside the others):\n\n| part | CPU | CPU %% | allocated | alloc %% |\n|---|---:|---:|---:|---:|\n")
			for _, g := range pp.Stages {
				alloc := "— | —"
				if g.Alloc != "" {
					alloc = fmt.Sprintf("%s | %.1f", g.Alloc, g.AllocPct)
				}
				f("| %s | %s | %.1f | %s |\n", g.Name, g.CPU, g.CPUPct, alloc)
			}
			f("\n")
		}
		for _, t := range []struct {
			title string
			rows  []FuncCost
			flat  bool
		}{{"CPU, by own time (flat)", pp.CPUFlat, true}, {"CPU, by time including callees (cum)", pp.CPUCum, false},
			{"allocated bytes, by own allocations (flat alloc_space)", pp.AllocFlat, true}, {"allocated bytes, including callees (cum alloc_space)", pp.AllocCum, false}} {
			if len(t.rows) == 0 {
				continue
			}
			f("%s:\n\n", t.title)
			writeFuncCosts(f, "| function | flat | flat % | cum | cum % |", t.rows)
		}
	}
}

// writeFuncCosts is a table of top functions under header (no table when
// there are none).
func writeFuncCosts(f printf, header string, rows []FuncCost) {
	if len(rows) == 0 {
		return
	}
	f("%s\n|---|---:|---:|---:|---:|\n", header)
	for _, c := range rows {
		f("| `%s` | %s | %.1f | %s | %.1f |\n", shortFunc(c.Func), c.Flat, c.FlatPct, c.Cum, c.CumPct)
	}
	f("\n")
}

func orNone(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

// shortFunc drops the type arguments of a generic function's shape
// ("ensureLen[go.shape.[]…, go.shape.struct {…}]"), which can run to
// hundreds of characters.
func shortFunc(name string) string {
	if i := strings.Index(name, "[go.shape."); i >= 0 {
		return name[:i] + "[…]"
	}
	return name
}

// writePartitions shows how the events spread over partitions.
func writePartitions(f printf, ps []PartShare) {
	if len(ps) == 0 {
		return
	}
	f("\n## Events per partition (after the drain)\n\nOrder is per partition: one worker applies a partition's events and makes one batch durable at a time, so the busiest partition's worker sets the pace of a backlog (the generator's Zipf-distributed aggregates make some partitions hot).\n\n| projection/topic/partition | events | share of the topic |\n|---|---:|---:|\n")
	for _, p := range ps {
		f("| %s | %d | %.0f %% |\n", p.Partition, p.Events, 100*p.Share)
	}
}
