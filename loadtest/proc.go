package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// projectorProc is the projector under test, running as a child process.
type projectorProc struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

// startProjector starts `<self> loadtest projector-child args…` and waits
// until it serves /stats.
// memLimitMB > 0 gives it a pod's memory limit (REEL_MEMORY_LIMIT).
func startProjector(ctx context.Context, logw io.Writer, memLimitMB int64, args ...string) (*projectorProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"loadtest", ChildArg}, args...)...)
	cmd.Stderr = logw
	if memLimitMB > 0 {
		cmd.Env = append(os.Environ(), fmt.Sprintf("REEL_MEMORY_LIMIT=%d", memLimitMB<<20))
	}
	// The projector must not outlive the driver (Linux).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &projectorProc{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				lines <- a
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case p.addr = <-lines:
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("projector process exited: %v", err)
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, fmt.Errorf("projector process did not start within 60s")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop asks the projector to finish (SIGTERM: flush and exit) and waits.
func (p *projectorProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second): // batches are durable as they go; do not wait out a slow shutdown
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *projectorProc) stats(ctx context.Context) (childStats, error) {
	var st childStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// procUsage is a process's CPU time and resident memory from /proc.
type procUsage struct {
	CPU time.Duration
	RSS int64 // bytes
}

func readProc(pid int) (procUsage, error) {
	var u procUsage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// Fields after the command name (which may hold spaces) start at ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 22 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	u.CPU = time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	u.RSS = rss * int64(os.Getpagesize())
	return u, nil
}
