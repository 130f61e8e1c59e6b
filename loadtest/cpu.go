package loadtest

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Who used the machine's cores in each phase: the projector processes,
// the servers the script started (Config.Watch: ClickHouse, Kafka), the
// load test itself (producer, probes, raw limits, the peer's driver) and
// everything else, against the machine's busy time and the time its
// hypervisor gave to other machines (steal). On a machine the projector
// shares with ClickHouse and Kafka, this says where the time goes that the
// projector's own profile cannot show.

// PhaseCPU is one phase's CPU use, in cores (CPU seconds per second).
type PhaseCPU struct {
	Phase   string             `json:"phase"`
	Seconds float64            `json:"seconds"` // sampled wall time
	Busy    float64            `json:"busy"`    // the machine: user + nice + system + irq + softirq
	Steal   float64            `json:"steal"`   // taken by the hypervisor for other machines
	Procs   map[string]float64 `json:"procs"`   // by process: projector, the watched servers, load test
}

// Process names of PhaseCPU.Procs besides the watched ones.
const (
	cpuProjector = "projector"
	cpuDriver    = "load test"
)

// cpuSampler turns once-a-second readings of /proc into PhaseCPU.
type cpuSampler struct {
	prevProc  map[int]time.Duration
	prevStat  machineStat
	prevT     time.Time
	phases    []PhaseCPU
	watchName []string // names of watch, sorted
	watch     map[string]int
}

func newCPUSampler(watch map[string]int) *cpuSampler {
	s := &cpuSampler{prevProc: map[int]time.Duration{}, watch: watch}
	for n := range watch {
		s.watchName = append(s.watchName, n)
	}
	slices.Sort(s.watchName)
	return s
}

// sample reads the machine and the processes and charges what they used
// since the last sample to phase. projectors are the projector processes
// alive now.
func (s *cpuSampler) sample(phase string, projectors []int) {
	now := time.Now()
	st, err := readMachineStat()
	if err != nil {
		return
	}
	used := func(pid int) float64 {
		u, err := readProc(pid)
		if err != nil {
			return 0
		}
		prev, ok := s.prevProc[pid]
		s.prevProc[pid] = u.CPU
		if !ok {
			return 0 // first seen: its CPU before this second is not this phase's
		}
		return (u.CPU - prev).Seconds()
	}
	procs := map[string]float64{}
	for _, pid := range projectors {
		procs[cpuProjector] += used(pid)
	}
	for _, n := range s.watchName {
		procs[n] = used(s.watch[n])
	}
	procs[cpuDriver] = used(os.Getpid())
	prev, prevT := s.prevStat, s.prevT
	s.prevStat, s.prevT = st, now
	if prevT.IsZero() || phase == "" {
		return
	}
	var p *PhaseCPU
	if n := len(s.phases); n > 0 && s.phases[n-1].Phase == phase {
		p = &s.phases[n-1]
	} else {
		s.phases = append(s.phases, PhaseCPU{Phase: phase, Procs: map[string]float64{}})
		p = &s.phases[len(s.phases)-1]
	}
	p.Seconds += now.Sub(prevT).Seconds()
	p.Busy += st.busy - prev.busy
	p.Steal += st.steal - prev.steal
	for n, v := range procs {
		p.Procs[n] += v
	}
}

// result divides the sums by each phase's wall time: cores.
func (s *cpuSampler) result() []PhaseCPU {
	out := make([]PhaseCPU, 0, len(s.phases))
	for _, p := range s.phases {
		if p.Seconds <= 0 {
			continue
		}
		q := PhaseCPU{Phase: p.Phase, Seconds: p.Seconds, Busy: p.Busy / p.Seconds, Steal: p.Steal / p.Seconds, Procs: map[string]float64{}}
		for n, v := range p.Procs {
			q.Procs[n] = v / p.Seconds
		}
		out = append(out, q)
	}
	return out
}

// machineStat is the machine's CPU time so far, in seconds summed over
// its CPUs (/proc/stat).
type machineStat struct{ busy, steal float64 }

func readMachineStat() (machineStat, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineStat{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineStat{}, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	v := make([]float64, len(f)-1)
	for i := range v {
		n, _ := strconv.ParseFloat(f[i+1], 64)
		v[i] = n / 100 // USER_HZ
	}
	// user nice system idle iowait irq softirq steal …
	return machineStat{busy: v[0] + v[1] + v[2] + v[5] + v[6], steal: v[7]}, nil
}

// writeCPU renders the phases' CPU use.
func writeCPU(f printf, res *Results) {
	if len(res.CPU) == 0 {
		return
	}
	names := []string{cpuProjector}
	seen := map[string]bool{cpuProjector: true, cpuDriver: true}
	for _, p := range res.CPU {
		for n := range p.Procs {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	slices.Sort(names[1:])
	names = append(names, cpuDriver)
	f("### Who used the cores\n\n")
	f("The machine's %d CPUs per phase, in cores (CPU seconds per second, sampled once a second from /proc): busy is every process on the machine, steal the time the hypervisor gave to other machines, other = busy − the processes named. A phase whose busy plus steal nears %d is bound by the machine's cores, not by one process.\n\n",
		res.Machine.CPUs, res.Machine.CPUs)
	f("| phase | s | busy | steal |")
	for _, n := range names {
		f(" %s |", n)
	}
	f(" other |\n|---|---:|---:|---:|")
	for range names {
		f("---:|")
	}
	f("---:|\n")
	for _, p := range res.CPU {
		f("| %s | %.0f | %.2f | %.2f |", p.Phase, p.Seconds, p.Busy, p.Steal)
		named := 0.0
		for _, n := range names {
			v, ok := p.Procs[n]
			named += v
			if !ok {
				f(" – |")
				continue
			}
			f(" %.2f |", v)
		}
		f(" %.2f |\n", max(0, p.Busy-named))
	}
	f("\n")
}
