package store

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/projectors/projection"
)

// Plan is what running the current code would do to each of a projection's
// running generations (live, standby, building): `reel plan` prints it
// before anything runs.
type Plan struct {
	Projection  string
	Generations []GenerationPlan
}

// GenerationPlan is one generation's part of a Plan.
type GenerationPlan struct {
	GenerationInfo
	Migration Migration
}

// PlanChanges computes the Plan of p without changing anything.
func PlanChanges(ctx context.Context, conn driver.Conn, p *projection.Projection) (Plan, error) {
	pl := Plan{Projection: p.Name}
	if err := p.Validate(); err != nil {
		return pl, err
	}
	if err := EnsureSystemTables(ctx, conn); err != nil {
		return pl, err
	}
	gens, err := Generations(ctx, conn, p.Name)
	if err != nil {
		return pl, err
	}
	if len(gens) == 0 {
		// `reel project` registers generation 1 as live on its first run.
		gens = []GenerationInfo{{Projection: p.Name, Generation: 1, Status: StatusLive}}
	}
	for _, g := range gens {
		switch g.Status {
		case StatusRetired, StatusDropped:
			continue
		}
		m, err := PlanMigration(ctx, conn, NewLayout(p, g.Generation), g.Status == StatusLive)
		if err != nil {
			return pl, err
		}
		pl.Generations = append(pl.Generations, GenerationPlan{GenerationInfo: g, Migration: m})
	}
	return pl, nil
}

// Rebuild reports whether the live generation needs a rebuild.
func (pl Plan) Rebuild() bool {
	for _, g := range pl.Generations {
		if g.Status == StatusLive && len(g.Migration.Destructive()) > 0 {
			return true
		}
	}
	return false
}

// Write prints the plan for an operator.
func (pl Plan) Write(w io.Writer) {
	for _, g := range pl.Generations {
		m := g.Migration
		fmt.Fprintf(w, "%s g%d (%s):", pl.Projection, g.Generation, g.Status)
		switch {
		case m.Fresh:
			fmt.Fprintln(w, " no tables yet; `reel project` creates them with the current definition")
			continue
		case len(m.Changes) == 0:
			fmt.Fprintf(w, " up to date (definition revision %d)\n", m.Revision)
			continue
		}
		if m.Adopted {
			fmt.Fprint(w, " (no stored definition: read back from its tables)")
		}
		fmt.Fprintln(w)
		for _, c := range m.Changes {
			how := "additive"
			if c.Kind.Destructive() {
				how = "NEEDS A NEW GENERATION"
			}
			fmt.Fprintf(w, "  %-22s %s\n", how, c)
		}
		if err := m.Err(); err != nil {
			switch g.Status {
			case StatusLive:
				fmt.Fprintf(w, "  → `reel project` refuses to run it; run `reel rebuild %s` (blue/green: the new definition is built beside it, compared, cut over) or `reel rebuild %s -in-place` (projectors stopped, tables re-created)\n", pl.Projection, pl.Projection)
			case StatusStandby:
				fmt.Fprintf(w, "  → not run by this code (it stays as it is for a rollback of the code, until `reel generations gc`)\n")
			default:
				fmt.Fprintf(w, "  → a rebuild of the old definition: drop it with `reel generations gc %s -abandoned` and rebuild\n", pl.Projection)
			}
			continue
		}
		fmt.Fprintf(w, "  → `reel project` migrates it (revision %d → %d):\n", m.Revision, m.Revision+1)
		for _, s := range m.Statements {
			fmt.Fprintf(w, "    %s;\n", strings.ReplaceAll(s, "\n", "\n    "))
		}
		for _, t := range m.Backfill {
			fmt.Fprintf(w, "    fill %s from the topics' history: the runner resumes from its empty position, the other tables skip what they hold, no side effect runs again\n", t)
		}
	}
}
