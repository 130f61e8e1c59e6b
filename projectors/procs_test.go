package projectors_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/projectors/store"
)

// buildProjectorProc builds projectors/internal/projectorproc into a temp
// dir once per test.
func buildProjectorProc(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "projectorproc")
	cmd := exec.Command("go", "build", "-o", bin, "./internal/projectorproc")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build projectorproc: %v\n%s", err, out)
	}
	return bin
}

// fleet runs projector processes: started, SIGTERMed or SIGKILLed by the
// test. A process that exits without being told to is a crash.
type fleet struct {
	t      *testing.T
	bin    string
	args   []string
	logDir string

	mu      sync.Mutex
	n       int
	alive   []*proc
	all     []*proc
	starts  int
	kills   int
	terms   int
	freezes int
	crashed []string
}

type proc struct {
	id      int
	cmd     *exec.Cmd
	log     string
	done    chan struct{}
	told    bool // signaled by the test
	started time.Time
}

func newFleet(t *testing.T, bin string, args ...string) *fleet {
	f := &fleet{t: t, bin: bin, args: args, logDir: t.TempDir()}
	t.Cleanup(func() {
		f.mu.Lock()
		alive := append([]*proc(nil), f.alive...)
		f.mu.Unlock()
		for _, p := range alive {
			f.signal(p, syscall.SIGKILL)
		}
		if t.Failed() {
			f.dumpLogs(40)
		}
	})
	return f
}

func (f *fleet) start() *proc {
	f.mu.Lock()
	f.n++
	id := f.n
	f.mu.Unlock()
	p := &proc{id: id, log: filepath.Join(f.logDir, fmt.Sprintf("proc-%02d.log", id)), done: make(chan struct{}), started: time.Now()}
	out, err := os.Create(p.log)
	if err != nil {
		f.t.Fatal(err)
	}
	p.cmd = exec.Command(f.bin, append(append([]string(nil), f.args...), "-id", fmt.Sprint(id))...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		out.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.remove(p)
		if !p.told {
			f.crashed = append(f.crashed, fmt.Sprintf("proc %d exited by itself: %v", p.id, err))
		}
		close(p.done)
	}()
	f.mu.Lock()
	f.alive = append(f.alive, p)
	f.all = append(f.all, p)
	f.starts++
	f.mu.Unlock()
	return p
}

func (f *fleet) remove(p *proc) {
	for i, q := range f.alive {
		if q == p {
			f.alive = append(f.alive[:i], f.alive[i+1:]...)
			return
		}
	}
}

func (f *fleet) signal(p *proc, sig syscall.Signal) {
	f.mu.Lock()
	p.told = true
	f.mu.Unlock()
	_ = p.cmd.Process.Signal(sig)
}

// kill SIGKILLs p, as a crash or an OOM kill would.
func (f *fleet) kill(p *proc) {
	f.signal(p, syscall.SIGKILL)
	<-p.done
	f.mu.Lock()
	f.kills++
	f.mu.Unlock()
}

// term stops p gracefully and fails the test if it does not exit in time
// or exits with an error.
func (f *fleet) term(p *proc, timeout time.Duration) {
	// A process signalled before its Go runtime installed the handler dies
	// of the signal's default action: wait for its cue (a process the
	// chaos loop just started can be stopped milliseconds later).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(p.log)
		if bytes.Contains(b, []byte("projectorproc: signals handled")) || p.exited() {
			break
		}
	}
	f.signal(p, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		f.t.Errorf("proc %d did not stop within %s after SIGTERM", p.id, timeout)
		f.signal(p, syscall.SIGKILL)
		<-p.done
	}
	if st := p.cmd.ProcessState; st != nil && !st.Success() {
		f.t.Errorf("proc %d exited with %v after SIGTERM", p.id, st)
	}
	f.mu.Lock()
	f.terms++
	f.mu.Unlock()
}

// freeze stops p with SIGSTOP, as a GC pause, a stopped VM or a network
// partition would: it sends nothing and learns nothing until thaw.
func (f *fleet) freeze(p *proc) {
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	f.mu.Lock()
	f.freezes++
	f.mu.Unlock()
}

// thaw continues a frozen p (SIGCONT).
func (f *fleet) thaw(p *proc) { _ = p.cmd.Process.Signal(syscall.SIGCONT) }

func (f *fleet) living() []*proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*proc(nil), f.alive...)
}

func (f *fleet) crashes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.crashed...)
}

// grepLogs counts log lines containing s across every process.
func (f *fleet) grepLogs(s string) int {
	n := 0
	for _, p := range f.all {
		b, _ := os.ReadFile(p.log)
		n += bytes.Count(b, []byte(s))
	}
	return n
}

func (f *fleet) dumpLogs(lines int) {
	for _, p := range f.all {
		fh, err := os.Open(p.log)
		if err != nil {
			continue
		}
		var tail []string
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, `"level":"INFO"`) {
				continue
			}
			tail = append(tail, l)
			if len(tail) > lines {
				tail = tail[1:]
			}
		}
		fh.Close()
		f.t.Logf("---- proc %d (%s) ----\n%s", p.id, p.log, strings.Join(tail, "\n"))
	}
}

// waitAllApplied waits until every projection has applied the offsets.
func waitAllApplied(t *testing.T, ctx context.Context, check func(ctx context.Context) error, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		err := check(ctx)
		if err == nil {
			return time.Since(start)
		}
		if ctx.Err() != nil {
			t.Fatalf("not applied within %s: %v (last check: %v)", timeout, err, last)
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
}

// appliedCheck returns a check that every named projection (generation
// gen) has applied the offsets of its topics.
func appliedCheck(conn driver.Conn, gen int, want map[string]map[string]map[int32]int64) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for proj, offs := range want {
			if err := store.WaitApplied(ctx, conn, proj, gen, offs, 0); err != nil {
				return err
			}
		}
		return nil
	}
}

// exited reports whether p's process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
