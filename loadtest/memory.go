package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// rssBoundMB is issue 16's memory target: a projector pod's peak RSS.
const rssBoundMB = 256

// PhaseMemory is the projector's memory during one phase, from the
// once-a-second samples.
type PhaseMemory struct {
	Phase     string  `json:"phase"`
	Samples   int     `json:"samples"`
	RSSMaxMB  float64 `json:"rss_max_mb"`
	HeapMaxMB float64 `json:"heap_max_mb"` // Go heap in use (HeapAlloc)
	// Records fetched and not yet applied: waiting for the workers
	// (reel_projector_pending_bytes, estimated) and held by the Kafka
	// clients until a poll (reel_projector_fetch_buffered_bytes).
	PendingMaxMB  float64 `json:"pending_max_mb"`
	BufferedMaxMB float64 `json:"buffered_max_mb"`
}

// ProcessPeak is one projector process's peak RSS over its life, as the
// kernel counted it (VmHWM): it catches peaks between samples.
type ProcessPeak struct {
	Process string   `json:"process"`
	Phases  []string `json:"phases"`
	PeakMB  float64  `json:"peak_rss_mb"`
}

// phaseMemory groups the timeline's samples by phase, in the order the
// phases ran; samples without a projector process are left out.
func phaseMemory(tl []Sample) []PhaseMemory {
	var out []PhaseMemory
	idx := map[string]int{}
	for _, s := range tl {
		if s.RSSMB == 0 {
			continue
		}
		i, ok := idx[s.Phase]
		if !ok {
			i = len(out)
			idx[s.Phase] = i
			out = append(out, PhaseMemory{Phase: s.Phase})
		}
		m := &out[i]
		m.Samples++
		m.RSSMaxMB = max(m.RSSMaxMB, s.RSSMB)
		m.HeapMaxMB = max(m.HeapMaxMB, s.HeapMB)
		m.PendingMaxMB = max(m.PendingMaxMB, s.PendingMB)
		m.BufferedMaxMB = max(m.BufferedMaxMB, s.BufferedMB)
	}
	return out
}

// peakRSS is the highest RSS of any projector process of the run: the
// kernel's high-water marks and the samples.
func peakRSS(res *Results) float64 {
	var m float64
	for _, p := range res.Projector.Peaks {
		m = max(m, p.PeakMB)
	}
	for _, p := range res.Projector.PhaseMemory {
		m = max(m, p.RSSMaxMB)
	}
	return m
}

// readHWM returns a process's peak resident set size (VmHWM in
// /proc/<pid>/status) in bytes.
func readHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseHWM(b)
}

func parseHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmHWM: unexpected %q", v)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in the status")
}

// PeakHeap is the heap profile of the projector process taken when its
// heap was highest: what the memory held at the peak (pprof's in-use
// figures are those of the last garbage collection before it).
type PeakHeap struct {
	File   string     `json:"file"`
	Phase  string     `json:"phase"`
	T      float64    `json:"t"`       // seconds into the run
	HeapMB float64    `json:"heap_mb"` // the sample's Go heap
	Total  string     `json:"inuse_total,omitempty"`
	Top    []FuncCost `json:"inuse_space_flat,omitempty"`
	Error  string     `json:"error,omitempty"`
}

// peakHeapStep is how much higher than the last saved peak a heap must be
// for its profile to replace it: a rising heap is profiled a few times,
// not every second.
const peakHeapStep = 8

// peakHeap saves the heap profile of c as peak-heap.pprof when sample s
// has the highest heap so far (by peakHeapStep MB).
func (r *run) peakHeap(ctx context.Context, c *projectorProc, s Sample) {
	if ph := r.res.Projector.PeakHeap; ph != nil && s.HeapMB < ph.HeapMB+peakHeapStep {
		return
	}
	path := filepath.Join(r.dir, "peak-heap.pprof")
	tmp := path + ".part"
	ph := &PeakHeap{File: path, Phase: s.Phase, T: s.T, HeapMB: s.HeapMB}
	if err := c.fetch(ctx, http.MethodGet, "/debug/pprof/heap", tmp); err != nil {
		ph.Error = err.Error()
	} else if err := os.Rename(tmp, path); err != nil {
		ph.Error = err.Error()
	}
	r.res.Projector.PeakHeap = ph
}

// summarize fills the top list of in-use bytes.
func (ph *PeakHeap) summarize() {
	if ph.Error != "" {
		return
	}
	var err error
	if ph.Total, ph.Top, err = pprofTop("-sample_index=inuse_space", ph.File); err != nil {
		ph.Error = err.Error()
	}
}
