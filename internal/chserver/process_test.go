//go:build chdb

package chserver

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/reel-dev/reel/internal/chproc"
)

// The reel-chdb binary as internal/chproc runs it (built by
// `bash scripts/chdb.sh install`): ready line, SIGTERM, and data that
// survives a restart on the same -path, a graceful SIGTERM that lets a
// running statement finish, and kill -9 after an acknowledged insert.
func TestBinaryLifecycle(t *testing.T) {
	bin, err := chproc.FindBinary()
	if err != nil {
		t.Fatalf("%v (the chdb-tagged tests need the binary too)", err)
	}
	if st, err := os.Stat(bin); err == nil && time.Since(st.ModTime()) > 24*time.Hour {
		t.Logf("note: %s is older than a day; rerun bash scripts/chdb.sh install after changes", bin)
	}
	dir := t.TempDir()
	ctx := context.Background()
	start := func() *chproc.Server {
		t.Helper()
		srv, err := chproc.Start(ctx, chproc.Options{Dir: dir, Binary: bin, Log: testLog{t}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		return srv
	}
	srv := start()
	c := dial(t, srv.Addr(), "default")
	exec(t, c, "CREATE DATABASE kept")
	k := dial(t, srv.Addr(), "kept")
	exec(t, k, eventsDDL)
	insertEvents(t, k, 0, 30_000)
	checkEvents(t, k, 30_000, sumTo(30_000))
	srv.Stop() // SIGTERM: graceful

	srv = start()
	k = dial(t, srv.Addr(), "kept")
	checkEvents(t, k, 30_000, sumTo(30_000))
	insertEvents(t, k, 30_000, 10)
	checkEvents(t, k, 30_010, sumTo(30_010))

	// SIGTERM lets a statement under way finish.
	done := make(chan error, 1)
	go func() {
		var v uint8
		done <- k.QueryRow(ctx, "SELECT toUInt8(sleep(1) + 1)").Scan(&v)
	}()
	time.Sleep(300 * time.Millisecond)
	srv.Stop()
	if err := <-done; err != nil {
		t.Fatalf("in-flight query during SIGTERM: %v", err)
	}

	// An acknowledged insert survives kill -9.
	srv = start()
	k = dial(t, srv.Addr(), "kept")
	insertEvents(t, k, 30_010, 90)
	srv.Kill()
	srv = start()
	k = dial(t, srv.Addr(), "kept")
	checkEvents(t, k, 30_100, sumTo(30_100))
	srv.Stop()
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	if testing.Verbose() {
		l.t.Logf("reel-chdb: %s", p)
	}
	return len(p), nil
}
