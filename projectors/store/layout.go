package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/projectors/projection"
)

// System columns every projected row carries. (_topic, _partition, _offset)
// is the row's source position: the highest _offset present per partition
// is how far the table is applied (see DESIGN.md).
var systemColumns = []projection.Column{
	{Name: "_topic", Type: "LowCardinality(String)"},
	{Name: "_partition", Type: "UInt32"},
	{Name: "_offset", Type: "UInt64"},
	{Name: "_event_ts", Type: "DateTime64(3, 'UTC')"},
}

// SystemColumns are the columns Reel appends to every projected table.
func SystemColumns() []projection.Column { return append([]projection.Column(nil), systemColumns...) }

// InsertColumns is how many values the runtime appends to a row's user
// values in an insert: the system columns and the writer's _epoch (see
// PhysTable.Insert).
const InsertColumns = 5

// Names of Reel's own tables, shared by every projection in a database
// (OwnersTable is in fence.go, DefinitionsTable in evolve.go).
const (
	CheckpointsTable = "_reel_checkpoints"
	GenerationsTable = "_reel_generations"
	ResolvedTable    = "_reel_parked_resolved"
)

// dedupWindow is how many recent insert tokens a generation table keeps.
const dedupWindow = 1000

// parkedColumns are the user columns of a generation's parked table.
var parkedColumns = []projection.Column{
	{Name: "aggregate_id", Type: "String"},
	{Name: "event_type", Type: "LowCardinality(String)"},
	{Name: "event_id", Type: "String"},
	{Name: "reason", Type: "LowCardinality(String)"},
	{Name: "error", Type: "String"},
	{Name: "record_key", Type: "String"},
	{Name: "record_value", Type: "String"},
	{Name: "headers", Type: "Map(String, String)"},
	{Name: "parked_at", Type: "DateTime64(3, 'UTC')"},
}

// PhysTable is one physical table of a generation.
type PhysTable struct {
	Name    string              // physical name, e.g. orders__orders_current__g2
	Logical string              // logical name as stored in checkpoints: "orders_current", "orders_current_history", "parked"
	Columns []projection.Column // user columns; the system columns follow them
	State   bool                // the ReplacingMergeTree(_offset) current-state table
	History bool                // a State table's history (MergeTree, every version)
	Parked  bool                // the generation's parked-events table
	Engine  string              // table engine as created
	Key     string              // State tables (and their history): the aggregate key column
	DDL     string              // CREATE TABLE IF NOT EXISTS statement
	Inbox   string              // the Null-engine table the runtime inserts into
	Guard   string              // the materialized view that forwards the current owner's rows from Inbox
	Insert  string              // the runtime's INSERT INTO Inbox with the column list (user, system, _epoch)
	// InsertColumns are Insert's columns with their types. Given to
	// clickhouse-go with every batch (clickhouse.WithColumnNamesAndTypes),
	// they spare an HTTP insert its DESCRIBE TABLE round trip.
	InsertColumns []clickhouse.ColumnNameAndType
}

// Layout is the physical shape of one generation of a projection.
type Layout struct {
	Projection *projection.Projection
	Generation int
	// Tables are the generation's physical tables in insertion order: the
	// State table (if any) is last, as the worker writes it last in every
	// batch.
	Tables []PhysTable
	// Parked is the index of the parked table in Tables.
	Parked int
	// ByUser maps a Projection.Tables index to its Tables index.
	ByUser []int
	// HistoryOf maps a Projection.Tables index to its history table's
	// Tables index, or -1.
	HistoryOf []int
}

// State is the index of the State table in Tables, -1 for none.
func (l *Layout) State() int {
	for i, t := range l.Tables {
		if t.State {
			return i
		}
	}
	return -1
}

// PhysName is the physical name of a logical table in a generation.
func PhysName(projection, table string, gen int) string {
	return fmt.Sprintf("%s__%s__g%d", projection, table, gen)
}

// Group is the Kafka consumer group of a generation.
func Group(projection string, gen int) string {
	return fmt.Sprintf("reel.%s.g%d", projection, gen)
}

// NewLayout computes the tables of generation gen of p.
func NewLayout(p *projection.Projection, gen int) *Layout {
	l := &Layout{Projection: p, Generation: gen}
	l.ByUser = make([]int, len(p.Tables))
	l.HistoryOf = make([]int, len(p.Tables))
	add := func(pt PhysTable, orderBy string) int {
		pt.Columns = append([]projection.Column(nil), pt.Columns...)
		pt.DDL = createTable(pt.Name, pt.Columns, pt.Engine, orderBy, pt.State)
		pt.Inbox, pt.Guard = pt.Name+inboxSuffix, pt.Name+guardSuffix
		// Rows go to the table's inbox with the writer's epoch; the guard
		// view forwards them only while that epoch owns the partition.
		cols := append(append(append([]projection.Column(nil), pt.Columns...), systemColumns...), epochColumn)
		pt.Insert = fmt.Sprintf("INSERT INTO %s (%s)", pt.Inbox, ColumnList(cols))
		pt.InsertColumns = make([]clickhouse.ColumnNameAndType, len(cols))
		for i, c := range cols {
			pt.InsertColumns[i] = clickhouse.ColumnNameAndType{Name: c.Name, Type: c.Type}
		}
		l.Tables = append(l.Tables, pt)
		return len(l.Tables) - 1
	}
	stateIdx := -1
	for i, t := range p.Tables {
		l.HistoryOf[i] = -1
		if t.State {
			stateIdx = i
			if t.History {
				l.HistoryOf[i] = add(PhysTable{Name: PhysName(p.Name, t.Name+"_history", gen), Logical: t.Name + "_history",
					Columns: t.Columns, History: true, Engine: "MergeTree", Key: t.Key}, t.Key+", _offset")
			}
			continue
		}
		engine := t.Engine
		if engine == "" {
			engine = "MergeTree"
		}
		l.ByUser[i] = add(PhysTable{Name: PhysName(p.Name, t.Name, gen), Logical: t.Name, Columns: t.Columns, Engine: engine}, t.OrderBy)
	}
	l.Parked = add(PhysTable{Name: PhysName(p.Name, "parked", gen), Logical: "parked", Columns: parkedColumns,
		Parked: true, Engine: "MergeTree"}, "aggregate_id, _topic, _partition, _offset")
	if stateIdx >= 0 {
		t := p.Tables[stateIdx]
		l.ByUser[stateIdx] = add(PhysTable{Name: PhysName(p.Name, t.Name, gen), Logical: t.Name, Columns: t.Columns, State: true,
			Engine: "ReplacingMergeTree(_offset)", Key: t.Key}, t.OrderBy)
	}
	return l
}

// stateGranularity is the State table's index granularity. A State table
// is read by key — the runtime's state loads (a few keys of a chunk), the
// views' lookups of an aggregate — and with ClickHouse's 8,192 rows a
// granule, ten keys among 160,000 aggregates read 70,000 rows; with 256,
// 6,000 (measured through the FINAL view: 10–15 ms of CPU against 6–9).
// History and other tables, read by scans, keep the default.
const stateGranularity = 256

func createTable(name string, cols []projection.Column, engine, orderBy string, state bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", name)
	all := append(append([]projection.Column(nil), cols...), systemColumns...)
	for _, c := range all {
		fmt.Fprintf(&b, "  %s %s%s,\n", c.Name, c.Type, columnDefault(c))
	}
	// Positions are read per assignment, rebuild progress tick and cut-over
	// barrier: the projection answers them from a row per part and
	// partition instead of a scan of every row ('rebuild' keeps it right
	// in engines that merge rows away).
	fmt.Fprintf(&b, "  %s\n", positionsProjection)
	// No PARTITION BY: one batch insert must become exactly one part, so
	// that "max _offset present" implies "the whole batch is present".
	// The deduplication window makes a retried insert with the same
	// insert_deduplication_token a no-op even when the first attempt landed
	// after the retry's "did it land?" check (see commit.go).
	fmt.Fprintf(&b, ") ENGINE = %s ORDER BY (%s) SETTINGS non_replicated_deduplication_window = %d, deduplicate_merge_projection_mode = 'rebuild'",
		engine, orderBy, dedupWindow)
	if state {
		fmt.Fprintf(&b, ", index_granularity = %d", stateGranularity)
	}
	return b.String()
}

// positionsProjection keeps max(_offset) per partition with every part.
const (
	positionsName       = "_reel_positions"
	positionsProjection = "PROJECTION " + positionsName + " (SELECT _topic, _partition, max(_offset) GROUP BY _topic, _partition)"
)

// DropPositionsDDL removes the positions projection from a copy of a
// generation table (the load test's baseline: what an insert costs
// without it).
func DropPositionsDDL(table string) string {
	return "ALTER TABLE " + table + " DROP PROJECTION " + positionsName
}

// upgradeDDL gives a table created by an earlier Reel what createTable adds
// now (parts written before keep being read row by row until merged).
func upgradeDDL(table string) []string {
	return []string{
		"ALTER TABLE " + table + " MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'",
		"ALTER TABLE " + table + " ADD " + strings.Replace(positionsProjection, "PROJECTION", "PROJECTION IF NOT EXISTS", 1),
	}
}

// ViewDDL returns the CREATE OR REPLACE VIEW statements that point the
// projection's stable names at this generation alone.
func (l *Layout) ViewDDL() []string {
	var out []string
	for _, v := range l.viewBodies() {
		out = append(out, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS %s", v.Name, v.SQL))
	}
	return out
}

// viewBodies returns every stable view of the generation with its query.
func (l *Layout) viewBodies() []projection.View {
	p := l.Projection
	var out []projection.View
	for i, t := range p.Tables {
		pt := l.Tables[l.ByUser[i]]
		cols := ColumnList(t.Columns)
		if t.State {
			out = append(out, projection.View{Name: t.Name, SQL: fmt.Sprintf("SELECT %s FROM %s FINAL", cols, pt.Name)})
			if h := l.HistoryOf[i]; h >= 0 {
				out = append(out, projection.View{Name: t.Name + "_history", SQL: fmt.Sprintf("SELECT %s, _topic, _partition, _offset, _event_ts FROM %s", cols, l.Tables[h].Name)})
			}
			continue
		}
		out = append(out, projection.View{Name: t.Name, SQL: fmt.Sprintf("SELECT %s, _topic, _partition, _offset, _event_ts FROM %s", cols, pt.Name)})
	}
	out = append(out, projection.View{Name: p.Name + "_parked", SQL: fmt.Sprintf("SELECT * FROM %s WHERE (_topic, _partition, _offset) NOT IN (SELECT topic, part, off FROM %s WHERE proj = '%s' AND generation = %d)",
		l.Tables[l.Parked].Name, ResolvedTable, p.Name, l.Generation)})
	for _, v := range p.Views {
		out = append(out, projection.View{Name: v.Name, SQL: l.expand(v.SQL)})
	}
	return out
}

// expand replaces {{table}} references with physical names.
func (l *Layout) expand(sql string) string {
	for _, pt := range l.Tables {
		sql = strings.ReplaceAll(sql, "{{"+pt.Logical+"}}", pt.Name)
	}
	return sql
}

// ColumnList is the columns' names, comma-separated.
func ColumnList(cols []projection.Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// systemDDL creates Reel's own tables. Checkpoints and resolutions are
// written by a partition's owner: they are guarded like generation tables.
var systemDDL = slices.Concat([]string{ownersDDL, supersededDDL}, systemTablesDDL,
	guardedDDL(CheckpointsTable, sharedGuard), guardedDDL(ResolvedTable, sharedGuard))

var generationsDDL = `CREATE TABLE IF NOT EXISTS ` + GenerationsTable + ` (
  proj LowCardinality(String), generation UInt32, status LowCardinality(String),
  grp String, logic_version UInt32, note String, updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (proj, generation)`

var systemTablesDDL = []string{
	definitionsDDL, liveDDL, effectsDDL,
	`CREATE TABLE IF NOT EXISTS ` + CheckpointsTable + ` (
  proj LowCardinality(String), generation UInt32, tbl LowCardinality(String),
  topic LowCardinality(String), part UInt32, off UInt64, updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(off) ORDER BY (proj, generation, tbl, topic, part)`,
	generationsDDL,
	`CREATE TABLE IF NOT EXISTS ` + ResolvedTable + ` (
  proj LowCardinality(String), generation UInt32, topic LowCardinality(String), part UInt32, off UInt64,
  resolution LowCardinality(String), resolved_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (proj, generation, topic, part, off)`,
}

// EnsureSchema creates Reel's system tables and the generation's tables.
// It is idempotent.
func EnsureSchema(ctx context.Context, conn driver.Conn, l *Layout) error {
	stmts := append([]string(nil), systemDDL...)
	for _, t := range l.Tables {
		stmts = append(stmts, t.DDL)
		stmts = append(stmts, upgradeDDL(t.Name)...)
		stmts = append(stmts, guardedDDL(t.Name, tableGuard(l.Projection.Name, l.Generation))...)
	}
	for _, s := range stmts {
		if err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("ClickHouse DDL for projection %s g%d failed: %w\n%s", l.Projection.Name, l.Generation, err, s)
		}
	}
	return nil
}

// CreateViews points the projection's stable view names at the generation
// alone (and records it as the one the views serve). A running live
// generation does this when it starts; switching between two generations
// is SwitchViews.
func CreateViews(ctx context.Context, conn driver.Conn, l *Layout) error {
	if err := recordLive(ctx, conn, l.Projection.Name, l.Generation, true); err != nil {
		return err
	}
	for _, s := range l.ViewDDL() {
		if err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("view for projection %s g%d: %w\n%s", l.Projection.Name, l.Generation, err, s)
		}
	}
	return nil
}
