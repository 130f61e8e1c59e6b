// Package chproc finds and starts reel-chdb, Reel's embedded ClickHouse: the
// real ClickHouse engine (libchdb) behind a ClickHouse-compatible HTTP server.
// It is a separate cgo binary so that the reel binary stays pure Go.
//
//	srv, err := chproc.Start(ctx, chproc.Options{Dir: "/var/lib/reel/ch"})
//	if err != nil { ... }
//	defer srv.Stop()
//	dsn := srv.DSN() // http://127.0.0.1:PORT/default
package chproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ReadyPrefix is the line reel-chdb prints on stdout once it serves requests,
// followed by the address it listens on.
const ReadyPrefix = "REEL_CHDB_LISTEN="

// ErrNotInstalled is returned when no reel-chdb binary can be found.
var ErrNotInstalled = errors.New("embedded ClickHouse (reel-chdb) is not installed: run `bash scripts/chdb.sh install` or set REEL_CLICKHOUSE_DSN to a ClickHouse server")

// CacheDir is where Reel's scripts keep downloads and built tools
// (REEL_CACHE, default ~/.cache/reel).
func CacheDir() string {
	if d := os.Getenv("REEL_CACHE"); d != "" {
		return d
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "reel")
	}
	return filepath.Join(os.TempDir(), "reel-cache")
}

// FindBinary returns the reel-chdb path: REEL_CHDB_BIN, then next to the
// running executable, then $REEL_CACHE/bin/reel-chdb, then $PATH.
func FindBinary() (string, error) {
	if p := os.Getenv("REEL_CHDB_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("REEL_CHDB_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	var cands []string
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "reel-chdb"))
	}
	cands = append(cands, filepath.Join(CacheDir(), "bin", "reel-chdb"))
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	if p, err := exec.LookPath("reel-chdb"); err == nil {
		return p, nil
	}
	return "", ErrNotInstalled
}

// Options configure Start.
type Options struct {
	// Dir is the persistent data directory. Required.
	Dir string
	// Listen is the address to listen on. Default 127.0.0.1:0 (a free port).
	Listen string
	// Binary overrides FindBinary.
	Binary string
	// Log receives the server's stderr. Default: discarded.
	Log io.Writer
	// StartTimeout bounds the wait for readiness. Default 60s.
	StartTimeout time.Duration
	// TLSCert and TLSKey make the server speak HTTPS only. Default: HTTP.
	TLSCert, TLSKey string
	// UsersFile lists the users requests authenticate as (see
	// chserver.ParseUsers). Default: no authentication.
	UsersFile string
}

// Server is a running reel-chdb process.
type Server struct {
	cmd  *exec.Cmd
	tls  bool
	addr string
	done chan struct{}
}

// Start launches reel-chdb and waits until it accepts queries.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("chproc: Options.Dir is required")
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	bin := o.Binary
	if bin == "" {
		var err error
		if bin, err = FindBinary(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("chproc: data dir: %w", err)
	}
	args := []string{"-listen", o.Listen, "-path", o.Dir}
	if o.TLSCert != "" {
		args = append(args, "-tls-cert", o.TLSCert, "-tls-key", o.TLSKey)
	}
	if o.UsersFile != "" {
		args = append(args, "-users", o.UsersFile)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if o.Log != nil {
		cmd.Stderr = o.Log
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("chproc: start %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{}), tls: o.TLSCert != ""}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), ReadyPrefix); ok {
				select {
				case ready <- strings.TrimSpace(a):
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()
	t := time.NewTimer(o.StartTimeout)
	defer t.Stop()
	select {
	case s.addr = <-ready:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("chproc: %s exited before it was ready (%v); run it by hand to see why", bin, cmd.ProcessState)
	case <-t.C:
		s.Stop()
		return nil, fmt.Errorf("chproc: %s not ready after %s", bin, o.StartTimeout)
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
}

// Addr is host:port of the HTTP interface.
func (s *Server) Addr() string { return s.addr }

// DSN is a clickhouse-go DSN for the HTTP(S) interface and the default database.
func (s *Server) DSN() string {
	if s.tls {
		return "https://" + s.addr + "/default"
	}
	return "http://" + s.addr + "/default"
}

// Pid of the server process.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop terminates the server (SIGTERM, then SIGKILL after 10s) and waits.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}
