package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
)

// The rebuild job's tables (the job's logic is projectors/rebuild): its
// status, which `reel status` shows, and its lease.
const (
	// RebuildsTable holds one row per (projection, generation) rebuilt,
	// the newest version wins.
	RebuildsTable = "_reel_rebuilds"
	// RebuildLocksTable holds the rebuild leases (see rebuild's lock).
	RebuildLocksTable = "_reel_rebuild_locks"
)

// RebuildStatus is one row of RebuildsTable.
type RebuildStatus struct {
	Projection string
	Generation int     // the generation being built
	Replaces   int     // the live generation when the rebuild started (0: in-place)
	Mode       string  // "blue-green", "snapshot", "in-place"
	State      string  // one of rebuild's State* constants
	Replayed   uint64  // offsets replayed (sum over partitions)
	Total      uint64  // offsets to replay (sum over partitions; grows as events arrive)
	Lag        uint64  // offsets behind the end of the topics
	Rate       float64 // offsets per second (recent)
	ETA        time.Duration
	Error      string
	Start      string    // the resolved start offsets, as "topic:p=o,…"
	KeepUntil  time.Time // the replaced generation is kept until then (after cut-over)
	Host       string
	StartedAt  time.Time
	UpdatedAt  time.Time
}

var rebuildDDL = []string{
	`CREATE TABLE IF NOT EXISTS ` + RebuildsTable + ` (
  proj LowCardinality(String), generation UInt32, replaces UInt32, mode LowCardinality(String),
  state LowCardinality(String), replayed UInt64, total UInt64, lag UInt64, rate Float64,
  eta_seconds Float64, error String, start String, keep_until DateTime64(3, 'UTC'), host String,
  started_at DateTime64(3, 'UTC'), updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (proj, generation)`,
	`CREATE TABLE IF NOT EXISTS ` + RebuildLocksTable + ` (
  proj LowCardinality(String), token String, host String, acquired_at DateTime64(6, 'UTC'),
  heartbeat DateTime64(6, 'UTC'), released UInt8
) ENGINE = ReplacingMergeTree(heartbeat) ORDER BY (proj, token)`,
}

// EnsureRebuildTables creates the rebuild's tables. It is idempotent.
func EnsureRebuildTables(ctx context.Context, conn driver.Conn) error {
	for _, s := range rebuildDDL {
		if err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("create rebuild table: %w", err)
		}
	}
	return nil
}

// WriteRebuildStatus records a new version of a rebuild's status.
func WriteRebuildStatus(ctx context.Context, conn driver.Conn, s RebuildStatus) error {
	return conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+RebuildsTable+
		" (proj, generation, replaces, mode, state, replayed, total, lag, rate, eta_seconds, error, start, keep_until, host, started_at, updated_at)"+
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		s.Projection, uint32(s.Generation), uint32(s.Replaces), s.Mode, s.State, s.Replayed, s.Total, s.Lag, s.Rate,
		s.ETA.Seconds(), s.Error, s.Start, s.KeepUntil.UTC(), s.Host, s.StartedAt.UTC(), time.Now().UTC())
}

// RebuildStatuses returns the rebuilds recorded for projection ("" : every
// projection), newest generation first per projection. `reel status`
// shows these.
func RebuildStatuses(ctx context.Context, conn driver.Conn, projection string) ([]RebuildStatus, error) {
	if err := EnsureRebuildTables(ctx, conn); err != nil {
		return nil, err
	}
	q := "SELECT proj, generation, replaces, mode, state, replayed, total, lag, rate, eta_seconds, error, start, keep_until, host, started_at, updated_at FROM " +
		RebuildsTable + " FINAL"
	var args []any
	if projection != "" {
		q += " WHERE proj = ?"
		args = append(args, projection)
	}
	q += " ORDER BY proj, generation DESC"
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", RebuildsTable, err)
	}
	defer rows.Close()
	var out []RebuildStatus
	for rows.Next() {
		var s RebuildStatus
		var gen, repl uint32
		var eta float64
		if err := rows.Scan(&s.Projection, &gen, &repl, &s.Mode, &s.State, &s.Replayed, &s.Total, &s.Lag, &s.Rate, &eta,
			&s.Error, &s.Start, &s.KeepUntil, &s.Host, &s.StartedAt, &s.UpdatedAt); err != nil {
			return nil, err
		}
		s.Generation, s.Replaces = int(gen), int(repl)
		s.ETA = time.Duration(eta * float64(time.Second))
		out = append(out, s)
	}
	return out, rows.Err()
}

// RebuildLease is one live row of RebuildLocksTable.
type RebuildLease struct {
	Projection, Token, Host string
	AcquiredAt              time.Time // the server's clock
}

// TakeRebuildLease inserts a lease row for proj with the server's clock as
// its acquisition and heartbeat time.
func TakeRebuildLease(ctx context.Context, conn driver.Conn, proj, token, host string) error {
	if err := conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+RebuildLocksTable+" (proj, token, host, acquired_at, heartbeat, released) SELECT ?, ?, ?, now64(6), now64(6), 0",
		proj, token, host); err != nil {
		return fmt.Errorf("take rebuild lock: %w", err)
	}
	return nil
}

// LiveRebuildLeases returns the leases not released whose heartbeat is
// younger than ttl, oldest acquisition first (ties by token).
func LiveRebuildLeases(ctx context.Context, conn driver.Conn, ttl time.Duration) ([]RebuildLease, error) {
	rows, err := conn.Query(ctx, "SELECT proj, token, host, acquired_at FROM "+RebuildLocksTable+
		" FINAL WHERE released = 0 AND heartbeat > now64(6) - toIntervalMillisecond(?) ORDER BY acquired_at, token", ttl.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("read rebuild locks: %w", err)
	}
	defer rows.Close()
	var out []RebuildLease
	for rows.Next() {
		var h RebuildLease
		if err := rows.Scan(&h.Projection, &h.Token, &h.Host, &h.AcquiredAt); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// RenewRebuildLease writes the lease's heartbeat (the server's clock).
func RenewRebuildLease(ctx context.Context, conn driver.Conn, h RebuildLease) error {
	return conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+RebuildLocksTable+" (proj, token, host, acquired_at, heartbeat, released) SELECT ?, ?, ?, ?, now64(6), 0",
		h.Projection, h.Token, h.Host, h.AcquiredAt)
}

// ReleaseRebuildLease marks the lease released (its row is newer than any
// heartbeat written before).
func ReleaseRebuildLease(ctx context.Context, conn driver.Conn, h RebuildLease) error {
	return conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+RebuildLocksTable+" (proj, token, host, acquired_at, heartbeat, released) SELECT ?, ?, ?, ?, now64(6) + toIntervalSecond(1), 1",
		h.Projection, h.Token, h.Host, h.AcquiredAt)
}
