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

	"github.com/reel-dev/reel/projectors/store"
)

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
	conn  driver.Conn
	lease store.RebuildLease
	ttl   time.Duration
	log   *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup
}

func acquire(ctx context.Context, conn driver.Conn, proj, host string, ttl time.Duration, maxConcurrent int, log *slog.Logger) (*lock, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	l := &lock{conn: conn, lease: store.RebuildLease{Projection: proj, Token: hex.EncodeToString(b[:]), Host: host}, ttl: ttl, log: log, stop: make(chan struct{})}
	if err := store.TakeRebuildLease(ctx, conn, proj, l.lease.Token, host); err != nil {
		return nil, err
	}
	leases, err := store.LiveRebuildLeases(ctx, conn, ttl)
	if err != nil {
		return nil, err
	}
	var first []store.RebuildLease // first live row per projection, in acquisition order
	seen := map[string]bool{}
	for _, h := range leases {
		if h.Token == l.lease.Token {
			l.lease.AcquiredAt = h.AcquiredAt
		}
		if !seen[h.Projection] {
			seen[h.Projection] = true
			first = append(first, h)
		}
	}
	refuse := func(format string, args ...any) (*lock, error) {
		l.release(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBusy}, args...)...)
	}
	var running []string
	for i, h := range first {
		if h.Projection == proj {
			if h.Token != l.lease.Token {
				return refuse("a rebuild of %s is already running on %s (lock taken at %s)", proj, h.Host, h.AcquiredAt.Format(time.RFC3339))
			}
			if i >= maxConcurrent {
				return refuse("%d rebuilds are running (%v); the cap is %d", i, running, maxConcurrent)
			}
			break
		}
		running = append(running, h.Projection)
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
			err := store.RenewRebuildLease(ctx, l.conn, l.lease)
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
	if err := store.ReleaseRebuildLease(ctx, l.conn, l.lease); err != nil {
		l.log.Warn("release rebuild lock failed; it expires by itself", "err", err, "ttl", l.ttl)
	}
}
