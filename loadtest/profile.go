package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
)

// serveProfiling adds to the projector process's mux a CPU profile that the
// driver starts and stops around a phase (net/http/pprof's profile takes a
// duration fixed in advance; a phase's length is not known when it starts):
// POST /profile/cpu/start, then POST /profile/cpu/stop answers the profile.
// Allocation profiles need nothing new: /debug/pprof/allocs at the start
// and at the end of the phase, the first as the base of the second.
func serveProfiling(mux *http.ServeMux) {
	var mu sync.Mutex
	var buf *bytes.Buffer
	mux.HandleFunc("POST /profile/cpu/start", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if buf != nil {
			http.Error(w, "a CPU profile is already running", http.StatusConflict)
			return
		}
		b := new(bytes.Buffer)
		if err := pprof.StartCPUProfile(b); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		buf = b
	})
	mux.HandleFunc("POST /profile/cpu/stop", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if buf == nil {
			http.Error(w, "no CPU profile running", http.StatusConflict)
			return
		}
		pprof.StopCPUProfile()
		_, _ = w.Write(buf.Bytes())
		buf = nil
	})
}

// PhaseProfile is the projector's CPU and allocation profiles over one
// phase, saved in the results directory, and their top functions.
type PhaseProfile struct {
	Phase      string     `json:"phase"`
	CPUFile    string     `json:"cpu_file"`              // CPU profile of the phase
	AllocBase  string     `json:"allocs_base_file"`      // allocations up to the start of the phase
	AllocFile  string     `json:"allocs_file"`           // allocations up to its end (-base AllocBase: the phase's)
	CPUTotal   string     `json:"cpu_total,omitempty"`   // CPU time sampled
	AllocTotal string     `json:"alloc_total,omitempty"` // bytes allocated in the phase
	Stages     []Stage    `json:"stages"`
	Waits      Waits      `json:"waits"`  // what the projector waited for
	Server     ServerWork `json:"server"` // what ClickHouse did
	CPUFlat    []FuncCost `json:"cpu_flat"`
	CPUCum     []FuncCost `json:"cpu_cum"`
	AllocFlat  []FuncCost `json:"alloc_space_flat"`
	AllocCum   []FuncCost `json:"alloc_space_cum"`
	Error      string     `json:"error,omitempty"`
}

// FuncCost is one line of `go tool pprof -top`.
type FuncCost struct {
	Func    string  `json:"func"`
	Flat    string  `json:"flat"`
	FlatPct float64 `json:"flat_pct"`
	Cum     string  `json:"cum"`
	CumPct  float64 `json:"cum_pct"`
}

// Stage is the share of a phase's CPU time and allocated bytes whose
// call stacks pass through one part of the pipeline.
type Stage struct {
	Name     string  `json:"name"`
	Focus    string  `json:"focus"` // pprof -focus regexp
	CPU      string  `json:"cpu"`
	CPUPct   float64 `json:"cpu_pct"`
	Alloc    string  `json:"alloc"`
	AllocPct float64 `json:"alloc_pct"`
}

// stages are the parts of the pipeline the report breaks a profile into,
// as pprof -focus regexps over function names: every sample whose stack
// holds a matching function counts. They overlap (allocation and GC
// happen inside the others).
var stages = []struct{ name, focus string }{
	{"Kafka fetch and decompression (franz-go sources)", `franz-go/pkg/kgo\.\(\*source\)`},
	{"Avro decoding (schemas.Codec.Decode)", `reel/schemas\.\(\*Codec\)\.Decode`},
	{"the projections' Apply code", `examples/demo/projectors/|loadtest\.appendProjection`},
	{"ClickHouse batch building and insert (clickhouse-go)", `clickhouse-go/v2`},
	{"GC background marking", `runtime\.gcBgMarkWorker`},
	{"allocation (runtime.mallocgc, inside the above too)", `runtime\.mallocgc`},
}

// profileTop is how many functions each top list keeps.
const profileTop = 12

// startProfile starts profiling the projector process for phase; the
// returned function stops it and saves the profiles as <name>-cpu.pprof,
// <name>-allocs-base.pprof and <name>-allocs.pprof in the results
// directory. Failures are recorded in the profile, not returned: a run
// without profiles still has its figures.
func (r *run) startProfile(ctx context.Context, phase, name string) func() {
	c := r.child
	pp := PhaseProfile{Phase: phase, CPUFile: filepath.Join(r.dir, name+"-cpu.pprof"),
		AllocBase: filepath.Join(r.dir, name+"-allocs-base.pprof"), AllocFile: filepath.Join(r.dir, name+"-allocs.pprof")}
	err := c.fetch(ctx, http.MethodGet, "/debug/pprof/allocs", pp.AllocBase)
	if err == nil {
		err = c.fetch(ctx, http.MethodPost, "/profile/cpu/start", "")
	}
	work := r.watchWork(ctx)
	return func() {
		var werr error
		pp.Waits, pp.Server, werr = work()
		if werr != nil {
			r.note("waits of %s: %v", phase, werr)
		}
		if err == nil {
			err = c.fetch(ctx, http.MethodPost, "/profile/cpu/stop", pp.CPUFile)
		}
		if err == nil {
			err = c.fetch(ctx, http.MethodGet, "/debug/pprof/allocs", pp.AllocFile)
		}
		if err != nil {
			pp.Error = err.Error()
			r.note("profile of %s: %v", phase, err)
		}
		r.res.Profiles = append(r.res.Profiles, pp)
	}
}

// fetch sends a request to the projector process and saves the answer
// into path (path "": discarded).
func (p *projectorProc) fetch(ctx context.Context, method, urlPath, path string) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.addr+urlPath, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", method, urlPath, resp.Status, bytes.TrimSpace(b))
	}
	if path == "" {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// summarize fills the top lists from the saved profiles with
// `go tool pprof -top` (github.com/google/pprof is not a dependency).
func (pp *PhaseProfile) summarize() {
	if pp.Error != "" {
		return
	}
	var errs []string
	run := func(total *string, args ...string) []FuncCost {
		t, rows, err := pprofTop(args...)
		if err != nil {
			errs = append(errs, err.Error())
			return nil
		}
		if total != nil {
			*total = t
		}
		return rows
	}
	pp.CPUFlat = run(&pp.CPUTotal, pp.CPUFile)
	pp.CPUCum = run(nil, "-cum", pp.CPUFile)
	alloc := []string{"-sample_index=alloc_space", "-base", pp.AllocBase, pp.AllocFile}
	pp.AllocFlat = run(&pp.AllocTotal, alloc...)
	pp.AllocCum = run(nil, append([]string{"-cum"}, alloc...)...)
	// With every node shown, "Showing nodes accounting for X, Y%" is the
	// focused samples' total.
	share := func(focus string, args ...string) (string, float64) {
		args = append([]string{"tool", "pprof", "-top", "-nodecount=1000000", "-nodefraction=0", "-focus=" + focus}, args...)
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			if bytes.Contains(out, []byte("matched no samples")) {
				return "0", 0
			}
			errs = append(errs, fmt.Sprintf("go tool pprof -focus=%s: %v", focus, err))
			return "", 0
		}
		return parseShown(out)
	}
	for _, st := range stages {
		g := Stage{Name: st.name, Focus: st.focus}
		g.CPU, g.CPUPct = share(st.focus, pp.CPUFile)
		if !strings.HasPrefix(st.focus, `runtime\.`) { // allocation stacks end above the runtime
			g.Alloc, g.AllocPct = share(st.focus, alloc...)
		}
		pp.Stages = append(pp.Stages, g)
	}
	pp.Error = strings.Join(errs, "; ")
}

// pprofTop runs `go tool pprof -top` over args and returns its total and
// its top profileTop rows.
func pprofTop(args ...string) (string, []FuncCost, error) {
	out, err := exec.Command("go", append([]string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", profileTop)}, args...)...).CombinedOutput()
	if err != nil {
		return "", nil, fmt.Errorf("go tool pprof %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	total, rows := parseTop(out)
	return total, rows, nil
}

// parseShown reads "Showing nodes accounting for X, Y% of T total".
func parseShown(out []byte) (string, float64) {
	for line := range strings.Lines(string(out)) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Showing nodes accounting for ")
		if !ok {
			continue
		}
		v, pct, ok := strings.Cut(rest, ", ")
		if !ok {
			return "", 0
		}
		pct, _, _ = strings.Cut(pct, "%")
		f, _ := strconv.ParseFloat(pct, 64)
		return v, f
	}
	return "", 0
}

// parseTop reads the output of `go tool pprof -top`: the total from the
// "Showing nodes accounting for X, Y% of TOTAL total" line, and one
// FuncCost per row of "flat flat% sum% cum cum% name".
func parseTop(out []byte) (total string, rows []FuncCost) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	inRows := false
	for sc.Scan() {
		line := sc.Text()
		if _, rest, ok := strings.Cut(line, "% of "); ok && strings.HasPrefix(strings.TrimSpace(line), "Showing nodes") {
			total = strings.TrimSuffix(strings.TrimSpace(rest), " total")
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "flat" && f[1] == "flat%" {
			inRows = true
			continue
		}
		if !inRows || len(f) < 6 {
			continue
		}
		flatPct, err1 := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		cumPct, err2 := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rows = append(rows, FuncCost{Func: strings.Join(f[5:], " "), Flat: f[0], FlatPct: flatPct, Cum: f[3], CumPct: cumPct})
	}
	return total, rows
}
