package rebuild

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
)

const lockTable = "_reel_rebuild_locks"

// ErrBusy is returned when another rebuild of the projection holds the
// lock, or the cap on concurrent rebuilds is reached.
var ErrBusy = errors.New("rebuild refused")

// lock is a lease in ClickHouse: insert-then-read election. Every contender
// inserts its row (acquired_at from the SERVER clock), then reads the live
// rows (not released, heartbeat younger than the TTL); the oldest row of a
// projection holds it, and only the first maxConcurrent projections (by
// their holder's acquired_at) may run. A killed holder stops heartbeating
// and its row expires after the TTL.
//
// The race window, honestly: on one ClickHouse server, inserts are visible
// to every later read, so of two contenders the one that inserts second
// always sees the first and backs off; the only tie is two inserts in the
// same microsecond, broken by token order, which both see only if both
// inserted before either read. On a replicated cluster without
// insert_quorum and select_sequential_consistency, a read may miss a row
// written on another replica; the Kafka group check (a building
// generation's group has members only while a rebuild runs) is the second
// fence. A holder paused longer than the TTL (GC, SIGSTOP) loses the lease
// without knowing; its runner keeps writing to the same generation, which
// exactly-once makes harmless, but two cut-overs could race.
type lock struct {
	conn     driver.Conn
	proj     string
	token    string
	host     string
	acquired time.Time
	ttl      time.Duration
	log      *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup
}

func acquire(ctx context.Context, conn driver.Conn, proj, host string, ttl time.Duration, maxConcurrent int, log *slog.Logger) (*lock, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	l := &lock{conn: conn, proj: proj, token: hex.EncodeToString(b[:]), host: host, ttl: ttl, log: log, stop: make(chan struct{})}
	if err := conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+lockTable+" (proj, token, host, acquired_at, heartbeat, released) SELECT ?, ?, ?, now64(6), now64(6), 0",
		proj, l.token, host); err != nil {
		return nil, fmt.Errorf("take rebuild lock: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT proj, token, host, acquired_at FROM "+lockTable+
		" FINAL WHERE released = 0 AND heartbeat > now64(6) - toIntervalMillisecond(?) ORDER BY acquired_at, token", ttl.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("read rebuild locks: %w", err)
	}
	type holder struct {
		proj, token, host string
		at                time.Time
	}
	var first []holder // first live row per projection, in acquisition order
	seen := map[string]bool{}
	for rows.Next() {
		var h holder
		if err := rows.Scan(&h.proj, &h.token, &h.host, &h.at); err != nil {
			rows.Close()
			return nil, err
		}
		if h.token == l.token {
			l.acquired = h.at
		}
		if !seen[h.proj] {
			seen[h.proj] = true
			first = append(first, h)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	refuse := func(format string, args ...any) (*lock, error) {
		l.release(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBusy}, args...)...)
	}
	var running []string
	for i, h := range first {
		if h.proj == proj {
			if h.token != l.token {
				return refuse("a rebuild of %s is already running on %s (lock taken at %s)", proj, h.host, h.at.Format(time.RFC3339))
			}
			if i >= maxConcurrent {
				return refuse("%d rebuilds are running (%v); the cap is %d", i, running, maxConcurrent)
			}
			break
		}
		running = append(running, h.proj)
	}
	l.wg.Add(1)
	go l.heartbeat()
	return l, nil
}

func (l *lock) heartbeat() {
	defer l.wg.Done()
	t := time.NewTicker(l.ttl / 4)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl/2)
			err := l.conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+lockTable+" (proj, token, host, acquired_at, heartbeat, released) SELECT ?, ?, ?, ?, now64(6), 0",
				l.proj, l.token, l.host, l.acquired)
			cancel()
			if err != nil {
				l.log.Warn("rebuild lock heartbeat failed", "err", err)
			}
		}
	}
}

// release ends the heartbeat and marks the lease released.
func (l *lock) release(ctx context.Context) {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+lockTable+" (proj, token, host, acquired_at, heartbeat, released) SELECT ?, ?, ?, ?, now64(6) + toIntervalSecond(1), 1",
		l.proj, l.token, l.host, l.acquired); err != nil {
		l.log.Warn("release rebuild lock failed; it expires by itself", "err", err, "ttl", l.ttl)
	}
}
