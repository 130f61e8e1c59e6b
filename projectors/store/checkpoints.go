package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
)

// CheckpointsInsert is the statement and values that record, for every
// table of the generation, that partition k is applied up to last, written
// by the owner of claim epoch into the guarded checkpoints (see DESIGN.md,
// "Exactly-once effects", 2). One statement with bound values (no DESCRIBE
// round trip, unlike a prepared batch): it runs once per batch.
func CheckpointsInsert(l *Layout, k TopicPartition, last int64, epoch uint64) (string, []any) {
	var q strings.Builder
	q.WriteString("INSERT INTO " + CheckpointsTable + inboxSuffix + " (proj, generation, tbl, topic, part, off, updated_at, _epoch) VALUES ")
	args := make([]any, 0, 7*len(l.Tables))
	for i, t := range l.Tables {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, now64(3), ?)")
		args = append(args, l.Projection.Name, uint32(l.Generation), t.Logical, k.Topic, uint32(k.Partition), uint64(last), epoch)
	}
	return q.String(), args
}

// ResolvedInsert records resolved parked events through the guarded inbox
// of ResolvedTable; a batch appends (proj, generation, topic, part, off,
// resolution, resolved_at, _epoch).
const ResolvedInsert = "INSERT INTO " + ResolvedTable + inboxSuffix + " (proj, generation, topic, part, off, resolution, resolved_at, _epoch)"

// PrepareCheckpoints prepares a batch of checkpoint rows written straight
// into CheckpointsTable, not through its guarded inbox: for a generation no
// runner runs (a rebuild's snapshot). Append (proj, generation, tbl, topic,
// part, off, updated_at) per row.
func PrepareCheckpoints(ctx context.Context, conn driver.Conn) (driver.Batch, error) {
	return conn.PrepareBatch(chclient.WriteContext(ctx, nil), "INSERT INTO "+CheckpointsTable+" (proj, generation, tbl, topic, part, off, updated_at)")
}

// ForgetPositions deletes a generation's checkpoints and resolved parked
// events (its tables emptied, it starts over).
func ForgetPositions(ctx context.Context, conn driver.Conn, proj string, gen int) error {
	return forget(ctx, conn, proj, gen, CheckpointsTable, ResolvedTable)
}

// ForgetGeneration deletes every row Reel's shared tables hold about a
// dropped generation: checkpoints, resolved parked events, claims and
// definitions (its registry rows stay: they say it was dropped).
func ForgetGeneration(ctx context.Context, conn driver.Conn, proj string, gen int) error {
	return forget(ctx, conn, proj, gen, CheckpointsTable, ResolvedTable, OwnersTable, DefinitionsTable)
}

// forget runs lightweight deletes: the rows disappear for every later read
// at once (an ALTER … DELETE mutation would run in the background).
func forget(ctx context.Context, conn driver.Conn, proj string, gen int, tables ...string) error {
	for _, tbl := range tables {
		if err := conn.Exec(ctx, "DELETE FROM "+tbl+" WHERE proj = ? AND generation = ?", proj, uint32(gen)); err != nil {
			return fmt.Errorf("forget %s of %s g%d: %w", tbl, proj, gen, err)
		}
	}
	return nil
}
