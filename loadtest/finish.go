package loadtest

import "fmt"

// finish computes the ratios, checks the targets and summarizes the
// profiles.
func (r *run) finish() {
	res := r.res
	// The projector's throughput: its drain rate (alone on the machine,
	// like the raw limits) when the max phase left a real backlog,
	// otherwise its live rate.
	proj, how := res.LiveMax.PerSec, "live with the producer"
	if res.Drain.Events >= 10000 && res.Drain.PerSec > proj {
		proj, how = res.Drain.PerSec, "draining the backlog alone"
	}
	res.Ratios.ProjectorRate = proj
	minRaw, is := res.RawConsume.PerSec, "raw consume"
	if res.RawInsert.EventsPerSec > 0 && (minRaw == 0 || res.RawInsert.EventsPerSec < minRaw) {
		minRaw, is = res.RawInsert.EventsPerSec, "raw insert"
	}
	res.Ratios.MinRaw, res.Ratios.MinRawIs = minRaw, is
	if minRaw > 0 {
		res.Ratios.ProjectorOverRaw = proj / minRaw
	}
	if res.LiveMax.PerSec > 0 {
		res.Ratios.ReplayOverLive = res.Replay.PerSec / res.LiveMax.PerSec
		res.Ratios.ProduceOverProject = res.Produce.PerSec / res.LiveMax.PerSec
	}
	var half float64
	var halfLv *Level
	for i := range res.Freshness {
		if res.Freshness[i].Fraction == 0.5 {
			halfLv = &res.Freshness[i]
			half = halfLv.Produced.PerSec
		}
	}
	if half > 0 {
		res.Ratios.ReplayOverHalf = res.Replay.PerSec / half
	}
	if res.Peer.Ran && res.Peer.Rate.PerSec > 0 {
		res.Peer.Ratio = proj / res.Peer.Rate.PerSec
	}
	// Memory.
	res.Projector.PhaseMemory = phaseMemory(res.Timeline)
	res.Projector.PeakRSSMB = peakRSS(res)
	// Equal work: the append-only projection and the peer on the shop topic.
	if res.Peer.Ran {
		res.AppendOnly.Peer = res.Peer.Rate
	}
	if res.AppendOnly.Peer.PerSec > 0 {
		res.AppendOnly.Ratio = res.AppendOnly.Reel.PerSec / res.AppendOnly.Peer.PerSec
	}
	// CPU.
	var cpuSum, n float64
	for _, s := range res.Timeline {
		if s.Phase == "max" && s.CPU > 0 {
			cpuSum += s.CPU
			n++
		}
	}
	if n > 0 {
		res.Projector.CPUMax = cpuSum / n
		if res.LiveMax.PerSec > 0 {
			res.Projector.CPUPerKEv = res.Projector.CPUMax / res.LiveMax.PerSec * 1e6
		}
	}

	res.Targets = []Target{
		{Name: "projector throughput vs min(raw consume, raw insert)", Goal: "≥ 70 %",
			Value: fmt.Sprintf("%.0f %% (%.0f/s %s vs %s %.0f/s)", 100*res.Ratios.ProjectorOverRaw, proj, how, is, minRaw),
			Met:   res.Ratios.ProjectorOverRaw >= 0.7},
		{Name: "full replay vs live rate", Goal: "≥ 3×",
			Value: fmt.Sprintf("%.2f× the max live rate (%.0f/s vs %.0f/s); %.1f× the half-max level", res.Ratios.ReplayOverLive, res.Replay.PerSec, res.LiveMax.PerSec, res.Ratios.ReplayOverHalf),
			Met:   res.Ratios.ReplayOverLive >= 3},
	}
	if halfLv != nil {
		res.Targets = append(res.Targets, Target{Name: "freshness p99 at half the max rate", Goal: "< 1 s",
			Value: fmt.Sprintf("%.0f ms (p50 %.0f, p95 %.0f) at %.0f events/s", halfLv.P99, halfLv.P50, halfLv.P95, halfLv.Produced.PerSec),
			Met:   halfLv.Samples > 0 && halfLv.P99 < 1000})
	}
	res.Targets = append(res.Targets, Target{Name: "projector peak RSS (all phases, all processes)", Goal: fmt.Sprintf("< %d MB", rssBoundMB),
		Value: fmt.Sprintf("%.0f MB (Go heap max %.0f MB)", res.Projector.PeakRSSMB, res.Projector.HeapMaxMB),
		Met:   res.Projector.PeakRSSMB > 0 && res.Projector.PeakRSSMB < rssBoundMB})
	ao := res.AppendOnly
	res.Targets = append(res.Targets, Target{Name: "Reel append-only vs the peer, equal work (shop topic copied row for row)", Goal: "≥ 1.00×",
		Value: fmt.Sprintf("%.2f× (%.0f/s vs %.0f/s)", ao.Ratio, ao.Reel.PerSec, ao.Peer.PerSec),
		Met:   ao.Peer.PerSec > 0 && ao.Ratio >= 1})
	res.Targets = append(res.Targets, Target{Name: "failed queries during cut-over", Goal: "0",
		Value: fmt.Sprintf("%d of %d (switch took %.1f ms)", res.Cutover.Failed, res.Cutover.Queries, res.Cutover.DurationMs),
		Met:   res.Cutover.Queries > 0 && res.Cutover.Failed == 0})

	for i := range res.Profiles {
		res.Profiles[i].summarize()
	}
	if ph := res.Projector.PeakHeap; ph != nil {
		ph.summarize()
	}
}
