package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors/projection"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestPositionsReadFromProjection: reading a table's positions (at every
// assignment, rebuild progress tick and cut-over barrier) is answered by
// the positions projection, a row per part and partition, not by a scan of
// the table's rows; a table's position is the higher of its rows' and its
// checkpoint's.
func TestPositionsReadFromProjection(t *testing.T) {
	ctx := context.Background()
	ch := testenv.ClickHouse(t)
	p := &projection.Projection{Name: "positions", Topics: []string{"log"},
		Tables: []projection.Table{{Name: "log", Columns: []projection.Column{{Name: "v", Type: "UInt64"}}, OrderBy: "v"}}}
	l := NewLayout(p, 1)
	if err := EnsureSchema(ctx, ch.Conn, l); err != nil {
		t.Fatal(err)
	}
	log := l.Tables[l.ByUser[0]]
	// Five batches of ten rows, as five inserts (five parts). Straight into
	// the table: the inbox and its guard are the runtime's business.
	for first := 0; first < 50; first += 10 {
		b, err := ch.Conn.PrepareBatch(ctx, "INSERT INTO "+log.Name+" (v, _topic, _partition, _offset, _event_ts)")
		if err != nil {
			t.Fatal(err)
		}
		for off := first; off < first+10; off++ {
			if err := b.Append(uint64(off), "log", uint32(0), uint64(off), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	// The parked table got no rows, only a checkpoint.
	if err := ch.Conn.Exec(ctx, "INSERT INTO "+CheckpointsTable+" (proj, generation, tbl, topic, part, off, updated_at) VALUES ('positions', 1, 'parked', 'log', 0, 49, now64(3))"); err != nil {
		t.Fatal(err)
	}
	rows, err := ch.Conn.Query(ctx, "EXPLAIN "+positionsSQL(log.Name))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	rows.Close()
	if !strings.Contains(strings.Join(plan, "\n"), "ReadFromMergeTree (_reel_positions)") {
		t.Errorf("positions of %s are not read from its projection:\n%s", log.Name, strings.Join(plan, "\n"))
	}
	pos, err := ReadPositions(ctx, ch.Conn, l)
	if err != nil {
		t.Fatal(err)
	}
	got := pos[TopicPartition{Topic: "log", Partition: 0}]
	if len(got) != len(l.Tables) || got[l.ByUser[0]] != 49 || got[l.Parked] != 49 {
		t.Errorf("positions %v (log at %d, parked at %d), want 49 for both", got, l.ByUser[0], l.Parked)
	}
	applied, err := AppliedPositions(ctx, ch.Conn, l)
	if err != nil {
		t.Fatal(err)
	}
	if a := applied["log"][0]; a != 49 {
		t.Errorf("applied position %d, want 49", a)
	}
}

// TestLag: one definition for status, metrics, rebuild progress and the
// load test.
func TestLag(t *testing.T) {
	for _, c := range []struct{ end, applied, start, want int64 }{
		{10, -1, 0, 10}, // nothing applied: every offset
		{10, 9, 0, 0},   // caught up
		{10, 4, 0, 5},
		{10, 12, 0, 0}, // positions read after the end offsets
		{10, -1, 6, 4}, // a replay from offset 6
		{10, 7, 6, 2},
		{5, -1, 6, 0}, // start past the end
	} {
		if got := Lag(c.end, c.applied, c.start); got != c.want {
			t.Errorf("Lag(%d, %d, %d) = %d, want %d", c.end, c.applied, c.start, got, c.want)
		}
	}
	if got := (PartitionProgress{Applied: 4}).Lag(10); got != 5 {
		t.Errorf("PartitionProgress.Lag = %d, want 5", got)
	}
	if InsertColumns != len(systemColumns)+1 {
		t.Errorf("InsertColumns = %d, but the runtime appends %d system columns and _epoch", InsertColumns, len(systemColumns))
	}
}
