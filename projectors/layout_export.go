package projectors

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
)

// Exported views of a generation's layout and positions for tools that work
// on whole generations (the rebuild job: progress, snapshot, compare,
// cut-over, drop). Pure additions: nothing here changes the runtime.

// CheckpointsTable and GenerationsTable are Reel's system tables.
const (
	CheckpointsTable = checkpointsTable
	GenerationsTable = generationsTable
	ResolvedTable    = resolvedTable
	OwnersTable      = ownersTable
	DefinitionsTable = definitionsTable
)

// PhysTable describes one physical table of a generation.
type PhysTable struct {
	Name    string   // physical name, e.g. orders__orders_current__g2
	Logical string   // logical name as stored in checkpoints: "orders_current", "orders_current_history", "parked"
	Columns []Column // user columns; the system columns follow them
	State   bool     // the ReplacingMergeTree(_offset) current-state table
	History bool     // a State table's history (MergeTree, every version)
	Parked  bool     // the generation's parked-events table
	Engine  string   // table engine as created
	Key     string   // State tables (and their history): the aggregate key column
	DDL     string   // CREATE TABLE IF NOT EXISTS statement
	Inbox   string   // the Null-engine table the runtime inserts into
	Guard   string   // the materialized view that forwards the current owner's rows from Inbox
}

// Tables returns the generation's physical tables in insertion order: the
// State table (if any) is last, as the worker writes it last in every batch.
func (l *Layout) Tables() []PhysTable {
	out := make([]PhysTable, len(l.tables))
	for i, t := range l.tables {
		pt := PhysTable{Name: t.name, Logical: t.logical, Columns: append([]Column(nil), t.columns...),
			State: t.state, Parked: i == l.parked, Engine: "MergeTree", DDL: t.ddl,
			Inbox: t.name + inboxSuffix, Guard: t.name + guardSuffix}
		for ui, ut := range l.Projection.Tables {
			switch {
			case l.byUser[ui] == i:
				if ut.State {
					pt.Engine, pt.Key = "ReplacingMergeTree(_offset)", ut.Key
				} else if ut.Engine != "" {
					pt.Engine = ut.Engine
				}
			case l.history[ui] == i:
				pt.History, pt.Key = true, ut.Key
			}
		}
		out[i] = pt
	}
	return out
}

// SystemColumns are the columns Reel appends to every projected table.
func SystemColumns() []Column { return append([]Column(nil), systemColumns...) }

// TablePositions returns, per topic → partition, the highest offset each
// physical table of the generation holds (index as in Tables; -1: none):
// max(_offset) of its rows or its checkpoint, whichever is higher — the
// positions the runtime resumes from.
func TablePositions(ctx context.Context, conn driver.Conn, l *Layout) (map[string]map[int32][]int64, error) {
	pos, err := readPositions(ctx, conn, l)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32][]int64{}
	for k, v := range pos {
		if out[k.topic] == nil {
			out[k.topic] = map[int32][]int64{}
		}
		out[k.topic][k.partition] = v
	}
	return out, nil
}

// AppliedPositions returns, per topic → partition, the highest offset every
// table of the generation holds (the minimum over its tables; -1: nothing).
// Every event up to it has its full effect in the generation.
func AppliedPositions(ctx context.Context, conn driver.Conn, l *Layout) (map[string]map[int32]int64, error) {
	pos, err := TablePositions(ctx, conn, l)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]int64{}
	for topic, parts := range pos {
		out[topic] = map[int32]int64{}
		for p, v := range parts {
			lo := v[0]
			for _, x := range v[1:] {
				lo = min(lo, x)
			}
			out[topic][p] = lo
		}
	}
	return out, nil
}

// GenerationStatus is one status change for SetGenerations.
type GenerationStatus struct {
	Generation int
	Status     string
	Note       string
}

// SetGenerations records several generations' statuses in ONE insert: a
// single block is atomic in ClickHouse, so a crash never leaves a cut-over
// half recorded (two live generations, or none).
func SetGenerations(ctx context.Context, conn driver.Conn, p *Projection, changes ...GenerationStatus) error {
	b, err := conn.PrepareBatch(chclient.WriteContext(ctx, nil), "INSERT INTO "+generationsTable+" (proj, generation, status, grp, logic_version, note, updated_at)")
	if err != nil {
		return fmt.Errorf("record generations of %s: %w", p.Name, err)
	}
	defer b.Close()
	now := time.Now().UTC()
	for _, c := range changes {
		if err := b.Append(p.Name, uint32(c.Generation), c.Status, Group(p.Name, c.Generation), uint32(p.Version), c.Note, now); err != nil {
			return err
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record generations of %s: %w", p.Name, err)
	}
	return nil
}
