package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/projection"
)

// DefinitionsTable records every generation's definition, one row per
// revision: revision 1 when the generation's tables were created (or
// adopted), one more per migration, with the changes and the statements
// that applied them.
const DefinitionsTable = "_reel_definitions"

var definitionsDDL = `CREATE TABLE IF NOT EXISTS ` + DefinitionsTable + ` (
  proj LowCardinality(String), generation UInt32, revision UInt32, definition String, logic_version UInt32,
  changes String, statements String, applied_at DateTime64(6, 'UTC')
) ENGINE = MergeTree ORDER BY (proj, generation, revision)`

// ErrDefinitionChanged is wrapped by a *DefinitionError.
var ErrDefinitionChanged = errors.New("the projection's definition changed in a way its generation cannot follow")

// DefinitionError reports that a generation's stored definition differs
// from the code's in ways a migration cannot apply: the generation can
// only be replaced (rebuild), never run by this code.
type DefinitionError struct {
	Projection string
	Generation int
	Changes    []Change // the destructive ones
}

func (e *DefinitionError) Error() string {
	var cs []string
	for _, c := range e.Changes {
		cs = append(cs, c.String())
	}
	return fmt.Sprintf("%v: %s g%d was created with another definition and needs a new generation for: %s; run `reel rebuild %s` (blue/green, no downtime) or `reel rebuild %s -in-place` (projectors stopped); `reel plan %s` shows the difference",
		ErrDefinitionChanged, e.Projection, e.Generation, strings.Join(cs, "; "), e.Projection, e.Projection, e.Projection)
}

func (e *DefinitionError) Unwrap() error { return ErrDefinitionChanged }

// StoredDefinition returns the latest recorded definition of a generation
// and its revision (0: none recorded).
func StoredDefinition(ctx context.Context, conn driver.Conn, proj string, gen int) (Definition, int, error) {
	var s string
	var rev uint32
	err := conn.QueryRow(ctx, "SELECT argMax(definition, revision), max(revision) FROM "+DefinitionsTable+" WHERE proj = ? AND generation = ?",
		proj, uint32(gen)).Scan(&s, &rev)
	if err != nil {
		return Definition{}, 0, fmt.Errorf("read the stored definition of %s g%d: %w", proj, gen, err)
	}
	if rev == 0 {
		return Definition{}, 0, nil
	}
	d, err := ParseDefinition(s)
	return d, int(rev), err
}

// AsProjection returns a projection with d's tables, views and version and
// no Apply: enough for the layout (physical names, columns) of a
// generation created with d.
func (d Definition) AsProjection() *projection.Projection {
	p := &projection.Projection{Name: d.Projection, Version: d.Version}
	for _, t := range d.Tables {
		tt := projection.Table{Name: t.Name, Columns: append([]projection.Column(nil), t.Columns...), OrderBy: t.OrderBy, State: t.State, Key: t.Key, History: t.History}
		if !t.State {
			tt.Engine = t.Engine
		}
		p.Tables = append(p.Tables, tt)
	}
	p.Views = append(p.Views, d.Views...)
	return p
}

// StoredLayout is the layout of generation gen as its stored definition
// describes it (NewLayout(p, gen) when none is stored): the physical tables
// that exist, with the columns they have.
func StoredLayout(ctx context.Context, conn driver.Conn, p *projection.Projection, gen int) (*Layout, error) {
	d, rev, err := StoredDefinition(ctx, conn, p.Name, gen)
	if err != nil || rev == 0 {
		return NewLayout(p, gen), err
	}
	return NewLayout(d.AsProjection(), gen), nil
}

// Migration is what Evolve does (or would do) to one generation.
type Migration struct {
	Projection string
	Generation int
	// Revision is the stored revision the changes apply to (0: none).
	Revision int
	// Fresh: the generation has no tables yet; they are created with the
	// current definition.
	Fresh bool
	// Adopted: tables exist but no definition was recorded (a generation
	// created before definitions were stored); it was read back from the
	// tables' columns and the registry's logic version.
	Adopted    bool
	Changes    []Change
	Statements []string // additive migration, in order
	// Backfill lists new tables the runner fills from history: it resumes
	// from the lowest table position, so it re-reads the topics from the
	// start for them while the other tables drop rows they already hold.
	Backfill []string
}

// Destructive returns the changes that need a new generation.
func (m Migration) Destructive() []Change { return Destructive(m.Changes) }

// Err is a *DefinitionError when the migration has destructive changes.
func (m Migration) Err() error {
	if d := m.Destructive(); len(d) > 0 {
		return &DefinitionError{Projection: m.Projection, Generation: m.Generation, Changes: d}
	}
	return nil
}

// PlanMigration computes what Evolve would do to generation l.Generation
// of l.Projection without changing anything. views: the generation is
// live (its view changes are part of the migration).
func PlanMigration(ctx context.Context, conn driver.Conn, l *Layout, views bool) (Migration, error) {
	p := l.Projection
	m := Migration{Projection: p.Name, Generation: l.Generation}
	// Only the table this reads: a runner's start runs the rest of
	// Reel's DDL once, in EnsureSchema.
	if err := conn.Exec(ctx, definitionsDDL); err != nil {
		return m, fmt.Errorf("create %s: %w", DefinitionsTable, err)
	}
	cur := DefinitionOf(p)
	stored, rev, err := StoredDefinition(ctx, conn, p.Name, l.Generation)
	if err != nil {
		return m, err
	}
	m.Revision = rev
	if rev == 0 {
		adopted, exists, err := adopt(ctx, conn, p, l.Generation)
		if err != nil {
			return m, err
		}
		if !exists {
			m.Fresh = true
			return m, nil
		}
		stored, m.Adopted = adopted, true
	}
	m.Changes = Diff(stored, cur)
	if len(m.Destructive()) > 0 {
		return m, nil
	}
	for _, c := range m.Changes {
		switch c.Kind {
		case AddColumn, ChangeDefault:
			col := columnOf(p, c.Table, c.Column)
			for _, t := range l.Tables {
				if t.Logical != c.Table && t.Logical != c.Table+"_history" {
					continue
				}
				// The table first, then its inbox: the guard view
				// forwards the inbox's columns by name (SELECT * EXCEPT
				// (_epoch) is expanded per insert), so the table must
				// have a column before any insert can carry it.
				for _, name := range []string{t.Name, t.Name + inboxSuffix} {
					if c.Kind == AddColumn {
						m.Statements = append(m.Statements, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s%s", name, col.Name, col.Type, columnDefault(col)))
					} else if col.Default == "" {
						m.Statements = append(m.Statements, fmt.Sprintf("ALTER TABLE %s MODIFY COLUMN %s REMOVE DEFAULT", name, col.Name))
					} else {
						m.Statements = append(m.Statements, fmt.Sprintf("ALTER TABLE %s MODIFY COLUMN %s %s", name, col.Name, columnDefault(col)))
					}
				}
			}
		case AddTable:
			for _, t := range l.Tables {
				if t.Logical == c.Table {
					m.Statements = append(m.Statements, t.DDL)
					m.Statements = append(m.Statements, guardedDDL(t.Name, tableGuard(p.Name, l.Generation))...)
					m.Backfill = append(m.Backfill, c.Table)
				}
			}
		case DropView:
			if views {
				m.Statements = append(m.Statements, "DROP VIEW IF EXISTS "+c.Table)
			}
		}
	}
	if views && len(m.Changes) > 0 {
		// New and changed columns and tables reach the table views, new
		// and changed SQL the declared views.
		m.Statements = append(m.Statements, l.ViewDDL()...)
	}
	return m, nil
}

func columnOf(p *projection.Projection, table, column string) projection.Column {
	if _, t := p.Table(table); t != nil {
		for _, c := range t.Columns {
			if c.Name == column {
				return c
			}
		}
	}
	return projection.Column{Name: column}
}

func columnDefault(c projection.Column) string {
	if c.Default == "" {
		return ""
	}
	return " DEFAULT " + c.Default
}

// Evolve brings generation l.Generation to l.Projection's definition before
// it runs: a fresh generation's definition is recorded (revision 1) and
// its tables created; additive changes are applied and recorded as the
// next revision; destructive ones return a *DefinitionError and change
// nothing. Every statement is idempotent, so an Evolve interrupted half-way
// is finished by the next one.
func Evolve(ctx context.Context, conn driver.Conn, l *Layout, views bool) (Migration, error) {
	m, err := PlanMigration(ctx, conn, l, views)
	if err != nil {
		return m, err
	}
	if err := m.Err(); err != nil {
		return m, err
	}
	// A fresh generation's definition is recorded before its tables are
	// created: a process killed half-way through the DDL leaves revision 1
	// behind, and the next start creates the rest (no change to make).
	// Recorded after, the next start would adopt the tables that existed
	// and refuse the others as a destructive change (a State table added).
	if m.Fresh {
		if err := RecordDefinition(ctx, conn, l.Projection, l.Generation, 1, "created", nil); err != nil {
			return m, err
		}
	}
	// The migration first (ALTERs of existing tables, new tables), then
	// the idempotent DDL of everything (a fresh generation's tables).
	for _, s := range m.Statements {
		if err := conn.Exec(ctx, s); err != nil {
			return m, fmt.Errorf("migrate %s g%d: %w\n%s", m.Projection, m.Generation, err, s)
		}
	}
	if err := EnsureSchema(ctx, conn, l); err != nil {
		return m, err
	}
	if m.Fresh || !m.Adopted && len(m.Changes) == 0 {
		return m, nil
	}
	var cs []string
	for _, c := range m.Changes {
		cs = append(cs, c.String())
	}
	note := strings.Join(cs, "\n")
	if m.Adopted {
		note = "adopted from the existing tables\n" + note
	}
	return m, RecordDefinition(ctx, conn, l.Projection, l.Generation, m.Revision+1, note, m.Statements)
}

// RecordDefinition stores p's definition as revision rev of generation gen.
func RecordDefinition(ctx context.Context, conn driver.Conn, p *projection.Projection, gen, rev int, note string, statements []string) error {
	err := conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+DefinitionsTable+" (proj, generation, revision, definition, logic_version, changes, statements, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		p.Name, uint32(gen), uint32(rev), DefinitionOf(p).Canonical(), uint32(p.Version), note, strings.Join(statements, ";\n"), time.Now().UTC())
	if err != nil {
		return fmt.Errorf("record the definition of %s g%d: %w", p.Name, gen, err)
	}
	return nil
}

// adopt reads back the definition of a generation whose tables predate
// stored definitions: the current definition with each table's columns as
// ClickHouse has them, tables that do not exist left out, and the logic
// version the registry recorded. exists is false when none of the
// generation's tables exists.
func adopt(ctx context.Context, conn driver.Conn, p *projection.Projection, gen int) (d Definition, exists bool, err error) {
	d = DefinitionOf(p)
	sys := map[string]bool{epochColumn.Name: true}
	for _, c := range systemColumns {
		sys[c.Name] = true
	}
	var tables []TableDef
	for _, t := range d.Tables {
		rows, err := conn.Query(ctx, "SELECT name, type, default_kind, default_expression FROM system.columns WHERE database = currentDatabase() AND table = ? ORDER BY position",
			PhysName(p.Name, t.Name, gen))
		if err != nil {
			return d, false, fmt.Errorf("read the columns of %s g%d: %w", p.Name, gen, err)
		}
		var cols []projection.Column
		for rows.Next() {
			var c projection.Column
			var kind string
			if err := rows.Scan(&c.Name, &c.Type, &kind, &c.Default); err != nil {
				rows.Close()
				return d, false, err
			}
			if kind != "DEFAULT" {
				c.Default = ""
			}
			if !sys[c.Name] {
				cols = append(cols, c)
			}
		}
		rows.Close()
		if len(cols) > 0 {
			t.Columns = cols
			tables = append(tables, t)
		}
	}
	d.Tables = tables
	if len(tables) == 0 {
		return d, false, nil
	}
	if err := conn.Exec(ctx, generationsDDL); err != nil { // the registry, for the logic version
		return d, true, err
	}
	gens, err := Generations(ctx, conn, p.Name)
	if err != nil {
		return d, true, err
	}
	for _, g := range gens {
		if g.Generation == gen && g.LogicVersion > 0 {
			d.Version = g.LogicVersion
		}
	}
	return d, true, nil
}
