package rebuild

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// Snapshot copies generation from's tables into generation to (whose tables
// must exist and be empty) so that to resumes from recorded positions and
// replays only the tail. It keeps the runtime's invariant "the State table's
// position is never ahead of any other table's":
//
//  1. The State table is copied FIRST, FINAL, in one INSERT … SELECT: one
//     query reads one snapshot of the parts, so every aggregate's row is its
//     state as of that moment. Its position in `to` is the highest _offset
//     copied per partition (no checkpoint is written for it): events after
//     that produced no State row, so the state is exact at that offset.
//  2. Then each other table's position in `from` is read and the rows up
//     to it are copied, with a checkpoint at that position. The table
//     holds every row it gets up to the State position just copied,
//     because from's State table is written last in every batch; the
//     positions read (store.ReadPositions) raise every table to the State
//     table's, which is at least the one copied.
//
// The new generation's workers resume one past the State position and
// re-apply the few events up to the other tables' positions; the runtime
// drops their rows for tables that already hold them. Tables whose engine
// merges rows (Summing…, Aggregating…) cannot be cut at a position:
// Snapshot refuses them.
//
// It returns the State table's copied positions (or the lowest table
// position when there is no State table).
func Snapshot(ctx context.Context, conn driver.Conn, p *projection.Projection, from, to int) (map[string]map[int32]int64, error) {
	if err := SnapshotCarries(ctx, conn, p, from); err != nil {
		return nil, err
	}
	la, err := store.StoredLayout(ctx, conn, p, from)
	if err != nil {
		return nil, err
	}
	lb := store.NewLayout(p, to)
	ta := la.Tables
	// The copy's targets, in ta's order (the definitions may order
	// tables differently; SnapshotCarries made sure they have the same).
	byName := map[string]store.PhysTable{}
	for _, t := range lb.Tables {
		byName[t.Logical] = t
	}
	tb := make([]store.PhysTable, len(ta))
	for i, t := range ta {
		tb[i] = byName[t.Logical]
	}
	for _, t := range ta {
		if !t.State && collapses(t.Engine) {
			return nil, fmt.Errorf("snapshot of %s: table %s has engine %s, which merges rows and cannot be cut at a position; rebuild without -snapshot", p.Name, t.Logical, t.Engine)
		}
	}
	state := -1
	for i, t := range ta {
		if t.State {
			state = i
		}
	}
	copied := map[string]map[int32]int64{}
	if state >= 0 {
		cols := columnNames(ta[state])
		if err := conn.Exec(chclient.WriteContext(ctx, nil), fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s FINAL", tb[state].Name, cols, cols, ta[state].Name)); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", ta[state].Name, err)
		}
		offs, err := store.MaxOffsets(ctx, conn, tb[state].Name)
		if err != nil {
			return nil, err
		}
		for k, off := range offs {
			setPos(copied, k.Topic, k.Partition, off)
		}
	}
	posA, err := store.TablePositions(ctx, conn, la)
	if err != nil {
		return nil, err
	}
	ck, err := store.PrepareCheckpoints(ctx, conn)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	nck := 0
	for i, t := range ta {
		if i == state {
			continue
		}
		pos := map[string]map[int32]int64{}
		for topic, parts := range posA {
			for part, v := range parts {
				at := v[i]
				if at < 0 {
					continue
				}
				setPos(pos, topic, part, at)
				if state < 0 {
					if c, ok := copied[topic][part]; !ok || at < c {
						setPos(copied, topic, part, at)
					}
				}
				if err := ck.Append(p.Name, uint32(to), t.Logical, topic, uint32(part), uint64(at), nowUTC()); err != nil {
					return nil, err
				}
				nck++
			}
		}
		if len(pos) == 0 {
			continue
		}
		cols := columnNames(t)
		if err := conn.Exec(chclient.WriteContext(ctx, nil), fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE toInt64(_offset) <= %s",
			tb[i].Name, cols, cols, t.Name, posExpr(pos))); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", t.Name, err)
		}
	}
	// Checkpoints last: they only ever claim what the tables already hold.
	if nck > 0 {
		if err := ck.Send(); err != nil {
			return nil, fmt.Errorf("snapshot checkpoints: %w", err)
		}
	}
	return copied, nil
}

// SnapshotCarries refuses a snapshot start when the live generation's
// stored definition differs from p's in a way a copy of its rows cannot
// carry: a copy holds what the old definition computed, so only changes
// that leave every copied row as a replay would write it pass — views,
// and new columns with a DEFAULT (old rows show the default, exactly what
// a migration gives the live generation). A logic change, a new table
// (the copy has no history for it), a dropped, renamed or retyped column,
// another key or engine need a full replay.
func SnapshotCarries(ctx context.Context, conn driver.Conn, p *projection.Projection, from int) error {
	old, rev, err := store.StoredDefinition(ctx, conn, p.Name, from)
	if err != nil || rev == 0 {
		return err
	}
	var bad []string
	for _, c := range store.Diff(old, store.DefinitionOf(p)) {
		switch c.Kind {
		case store.AddView, store.ChangeView, store.DropView, store.ChangeDefault:
			continue
		case store.AddColumn:
			if !strings.Contains(c.To, " DEFAULT ") {
				bad = append(bad, c.String()+" (no DEFAULT: copied rows would hold the type's zero)")
			}
			continue
		}
		bad = append(bad, c.String())
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: a snapshot of %s g%d copies rows of its definition, which cannot carry: %s; rebuild without -snapshot (a full replay)",
			ErrSnapshotDefinition, p.Name, from, strings.Join(bad, "; "))
	}
	return nil
}

// ErrSnapshotDefinition: the definition changed in a way a snapshot copy
// cannot carry.
var ErrSnapshotDefinition = errors.New("snapshot refused")

func columnNames(t store.PhysTable) string {
	var names []string
	for _, c := range t.Columns {
		names = append(names, c.Name)
	}
	for _, c := range store.SystemColumns() {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// truncate empties a generation's tables and forgets its checkpoints and
// resolved parked events.
func truncate(ctx context.Context, conn driver.Conn, p *projection.Projection, gen int) error {
	for _, t := range store.NewLayout(p, gen).Tables {
		if err := conn.Exec(ctx, "TRUNCATE TABLE IF EXISTS "+t.Name); err != nil {
			return fmt.Errorf("truncate %s: %w", t.Name, err)
		}
	}
	return store.ForgetPositions(ctx, conn, p.Name, gen)
}
