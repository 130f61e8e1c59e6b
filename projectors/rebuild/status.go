package rebuild

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
)

// StatusTable is the rebuild status table `reel status` reads: one row per
// (projection, generation), the newest version wins.
const StatusTable = "_reel_rebuilds"

// Rebuild states in StatusTable.
const (
	StateStarting  = "starting"  // lock taken, generation chosen
	StateGating    = "gating"    // schema gate scanning the topics
	StateSnapshot  = "snapshot"  // copying the live generation's tables
	StateReplaying = "replaying" // replaying history into the new generation
	StateComparing = "comparing" // shadow compare with the live generation
	StateWaiting   = "waiting"   // caught up, waiting for a manual cut-over
	StateCutover   = "cutover"   // views switched, statuses flipped
	StateDone      = "done"      // finished (cut over, or in-place caught up)
	StateFailed    = "failed"    // stopped with an error (see error column)
	StateCanceled  = "canceled"  // stopped by the operator; resumable
)

// Status is one row of StatusTable.
type Status struct {
	Projection string
	Generation int     // the generation being built
	Replaces   int     // the live generation when the rebuild started (0: in-place)
	Mode       string  // "blue-green", "snapshot", "in-place"
	State      string  // one of the State* constants
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

var statusDDL = []string{
	`CREATE TABLE IF NOT EXISTS ` + StatusTable + ` (
  proj LowCardinality(String), generation UInt32, replaces UInt32, mode LowCardinality(String),
  state LowCardinality(String), replayed UInt64, total UInt64, lag UInt64, rate Float64,
  eta_seconds Float64, error String, start String, keep_until DateTime64(3, 'UTC'), host String,
  started_at DateTime64(3, 'UTC'), updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (proj, generation)`,
	`CREATE TABLE IF NOT EXISTS ` + lockTable + ` (
  proj LowCardinality(String), token String, host String, acquired_at DateTime64(6, 'UTC'),
  heartbeat DateTime64(6, 'UTC'), released UInt8
) ENGINE = ReplacingMergeTree(heartbeat) ORDER BY (proj, token)`,
}

// EnsureTables creates the rebuild's system tables. It is idempotent.
func EnsureTables(ctx context.Context, conn driver.Conn) error {
	for _, s := range statusDDL {
		if err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("create rebuild table: %w", err)
		}
	}
	return nil
}

func writeStatus(ctx context.Context, conn driver.Conn, s Status) error {
	return conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+StatusTable+
		" (proj, generation, replaces, mode, state, replayed, total, lag, rate, eta_seconds, error, start, keep_until, host, started_at, updated_at)"+
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		s.Projection, uint32(s.Generation), uint32(s.Replaces), s.Mode, s.State, s.Replayed, s.Total, s.Lag, s.Rate,
		s.ETA.Seconds(), s.Error, s.Start, s.KeepUntil.UTC(), s.Host, s.StartedAt.UTC(), time.Now().UTC())
}

// Statuses returns the rebuilds recorded for projection ("" : every
// projection), newest generation first per projection. `reel status`
// shows these.
func Statuses(ctx context.Context, conn driver.Conn, projection string) ([]Status, error) {
	if err := EnsureTables(ctx, conn); err != nil {
		return nil, err
	}
	q := "SELECT proj, generation, replaces, mode, state, replayed, total, lag, rate, eta_seconds, error, start, keep_until, host, started_at, updated_at FROM " +
		StatusTable + " FINAL"
	var args []any
	if projection != "" {
		q += " WHERE proj = ?"
		args = append(args, projection)
	}
	q += " ORDER BY proj, generation DESC"
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", StatusTable, err)
	}
	defer rows.Close()
	var out []Status
	for rows.Next() {
		var s Status
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

// statusOf returns the recorded status of one generation's rebuild.
func statusOf(ctx context.Context, conn driver.Conn, projection string, gen int) (*Status, error) {
	all, err := Statuses(ctx, conn, projection)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Generation == gen {
			return &all[i], nil
		}
	}
	return nil, nil
}
