package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/projection"
)

// Generation statuses in _reel_generations. A projection has at most one
// live generation; the stable views point at it.
const (
	StatusBuilding = "building" // being replayed by a rebuild; not behind the views
	StatusLive     = "live"     // behind the views; kept current by `reel project`
	StatusStandby  = "standby"  // the previous live generation, kept current for rollback
	StatusRetired  = "retired"  // no longer consumed; tables kept until dropped
	StatusDropped  = "dropped"  // tables dropped
)

// GenerationInfo is one row of the generation registry.
type GenerationInfo struct {
	Projection   string
	Generation   int
	Status       string
	Group        string
	LogicVersion int
	Note         string
	UpdatedAt    time.Time
}

// EnsureSystemTables creates Reel's own tables in the connection's database.
func EnsureSystemTables(ctx context.Context, conn driver.Conn) error {
	for _, s := range systemDDL {
		if err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("create Reel system table: %w", err)
		}
	}
	return nil
}

// Generations returns a projection's generations, oldest first.
func Generations(ctx context.Context, conn driver.Conn, projection string) ([]GenerationInfo, error) {
	rows, err := conn.Query(ctx, "SELECT proj, generation, status, grp, logic_version, note, updated_at FROM "+GenerationsTable+
		" FINAL WHERE proj = ? ORDER BY generation", projection)
	if err != nil {
		return nil, fmt.Errorf("read generations of %s: %w", projection, err)
	}
	defer rows.Close()
	var out []GenerationInfo
	for rows.Next() {
		var g GenerationInfo
		var gen, lv uint32
		if err := rows.Scan(&g.Projection, &gen, &g.Status, &g.Group, &lv, &g.Note, &g.UpdatedAt); err != nil {
			return nil, err
		}
		g.Generation, g.LogicVersion = int(gen), int(lv)
		out = append(out, g)
	}
	return out, rows.Err()
}

// GenerationStatusOf is the status the registry records for a generation
// ("": none).
func GenerationStatusOf(ctx context.Context, conn driver.Conn, proj string, gen int) (string, error) {
	var s string
	err := conn.QueryRow(ctx, "SELECT argMax(status, updated_at) FROM "+GenerationsTable+" WHERE proj = ? AND generation = ?", proj, uint32(gen)).Scan(&s)
	if err != nil {
		return "", fmt.Errorf("read the status of %s g%d: %w", proj, gen, err)
	}
	return s, nil
}

// SetGeneration records a generation's status. It goes through a batch
// (SetGenerations): a query parameter would bind updated_at with whole
// seconds, and a status written in the same second as an earlier one with
// microseconds would lose to it in the ReplacingMergeTree.
func SetGeneration(ctx context.Context, conn driver.Conn, p *projection.Projection, gen int, status, note string) error {
	return SetGenerations(ctx, conn, p, GenerationStatus{Generation: gen, Status: status, Note: note})
}

// LiveGeneration returns the live generation of p, registering generation
// 1 as live when the projection has never run.
func LiveGeneration(ctx context.Context, conn driver.Conn, p *projection.Projection) (int, error) {
	if err := EnsureSystemTables(ctx, conn); err != nil {
		return 0, err
	}
	gens, err := Generations(ctx, conn, p.Name)
	if err != nil {
		return 0, err
	}
	for _, g := range gens {
		if g.Status == StatusLive {
			return g.Generation, nil
		}
	}
	if len(gens) > 0 {
		return 0, fmt.Errorf("projection %s has generations %v but none is live (roll back or finish the rebuild)", p.Name, gens)
	}
	if err := SetGeneration(ctx, conn, p, 1, StatusLive, "first run"); err != nil {
		return 0, err
	}
	return 1, nil
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
func SetGenerations(ctx context.Context, conn driver.Conn, p *projection.Projection, changes ...GenerationStatus) error {
	b, err := conn.PrepareBatch(chclient.WriteContext(ctx, nil), "INSERT INTO "+GenerationsTable+" (proj, generation, status, grp, logic_version, note, updated_at)")
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
