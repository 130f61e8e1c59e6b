package projectors

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// System columns every projected row carries. (_topic, _partition, _offset)
// is the row's source position: the highest _offset present per partition
// is how far the table is applied (see DESIGN.md).
var systemColumns = []Column{
	{Name: "_topic", Type: "LowCardinality(String)"},
	{Name: "_partition", Type: "UInt32"},
	{Name: "_offset", Type: "UInt64"},
	{Name: "_event_ts", Type: "DateTime64(3, 'UTC')"},
}

// Names of Reel's own tables, shared by every projection in a database.
const (
	checkpointsTable = "_reel_checkpoints"
	generationsTable = "_reel_generations"
	resolvedTable    = "_reel_parked_resolved"
)

// dedupWindow is how many recent insert tokens a generation table keeps.
const dedupWindow = 1000

// parkedColumns are the user columns of a generation's parked table.
var parkedColumns = []Column{
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

// physTable is one physical table of a generation.
type physTable struct {
	name    string   // physical name
	logical string   // logical name ("orders", "orders_history", "parked")
	columns []Column // user columns (system columns are appended)
	ddl     string
	state   bool
	insert  string // INSERT statement with the column list
}

// Layout is the physical shape of one generation of a projection.
type Layout struct {
	Projection *Projection
	Generation int
	tables     []physTable // insertion order: non-state first, state last
	parked     int         // index of the parked table in tables
	byUser     []int       // Projection.Tables index → tables index
	history    []int       // Projection.Tables index → history tables index or -1
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
func NewLayout(p *Projection, gen int) *Layout {
	l := &Layout{Projection: p, Generation: gen}
	l.byUser = make([]int, len(p.Tables))
	l.history = make([]int, len(p.Tables))
	add := func(pt physTable) int {
		// Rows go to the table's inbox with the writer's epoch; the guard
		// view forwards them only while that epoch owns the partition.
		cols := append(append(append([]Column(nil), pt.columns...), systemColumns...), epochColumn)
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = c.Name
		}
		pt.insert = fmt.Sprintf("INSERT INTO %s (%s)", pt.name+inboxSuffix, strings.Join(names, ", "))
		l.tables = append(l.tables, pt)
		return len(l.tables) - 1
	}
	stateIdx := -1
	for i, t := range p.Tables {
		l.history[i] = -1
		if t.State {
			stateIdx = i
			if t.History {
				n := PhysName(p.Name, t.Name+"_history", gen)
				l.history[i] = add(physTable{name: n, logical: t.Name + "_history", columns: t.Columns,
					ddl: createTable(n, t.Columns, "MergeTree", t.Key+", _offset")})
			}
			continue
		}
		engine := t.Engine
		if engine == "" {
			engine = "MergeTree"
		}
		n := PhysName(p.Name, t.Name, gen)
		l.byUser[i] = add(physTable{name: n, logical: t.Name, columns: t.Columns, ddl: createTable(n, t.Columns, engine, t.OrderBy)})
	}
	pn := PhysName(p.Name, "parked", gen)
	l.parked = add(physTable{name: pn, logical: "parked", columns: parkedColumns,
		ddl: createTable(pn, parkedColumns, "MergeTree", "aggregate_id, _topic, _partition, _offset")})
	if stateIdx >= 0 {
		t := p.Tables[stateIdx]
		n := PhysName(p.Name, t.Name, gen)
		l.byUser[stateIdx] = add(physTable{name: n, logical: t.Name, columns: t.Columns, state: true,
			ddl: createTable(n, t.Columns, "ReplacingMergeTree(_offset)", t.OrderBy)})
	}
	return l
}

func createTable(name string, cols []Column, engine, orderBy string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", name)
	all := append(append([]Column(nil), cols...), systemColumns...)
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
	return b.String()
}

// positionsProjection keeps max(_offset) per partition with every part.
const positionsProjection = "PROJECTION _reel_positions (SELECT _topic, _partition, max(_offset) GROUP BY _topic, _partition)"

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
func (l *Layout) viewBodies() []View {
	p := l.Projection
	var out []View
	for i, t := range p.Tables {
		pt := l.tables[l.byUser[i]]
		cols := columnList(t.Columns)
		if t.State {
			out = append(out, View{t.Name, fmt.Sprintf("SELECT %s FROM %s FINAL", cols, pt.name)})
			if h := l.history[i]; h >= 0 {
				out = append(out, View{t.Name + "_history", fmt.Sprintf("SELECT %s, _topic, _partition, _offset, _event_ts FROM %s", cols, l.tables[h].name)})
			}
			continue
		}
		out = append(out, View{t.Name, fmt.Sprintf("SELECT %s, _topic, _partition, _offset, _event_ts FROM %s", cols, pt.name)})
	}
	out = append(out, View{p.Name + "_parked", fmt.Sprintf("SELECT * FROM %s WHERE (_topic, _partition, _offset) NOT IN (SELECT topic, part, off FROM %s WHERE proj = '%s' AND generation = %d)",
		l.tables[l.parked].name, resolvedTable, p.Name, l.Generation)})
	for _, v := range p.Views {
		out = append(out, View{v.Name, l.expand(v.SQL)})
	}
	return out
}

// expand replaces {{table}} references with physical names.
func (l *Layout) expand(sql string) string {
	for _, pt := range l.tables {
		sql = strings.ReplaceAll(sql, "{{"+pt.logical+"}}", pt.name)
	}
	return sql
}

func columnList(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// systemDDL creates Reel's own tables. Checkpoints and resolutions are
// written by a partition's owner: they are guarded like generation tables.
var systemDDL = slices.Concat([]string{ownersDDL}, systemTablesDDL,
	guardedDDL(checkpointsTable, sharedGuard), guardedDDL(resolvedTable, sharedGuard))

var generationsDDL = `CREATE TABLE IF NOT EXISTS ` + generationsTable + ` (
  proj LowCardinality(String), generation UInt32, status LowCardinality(String),
  grp String, logic_version UInt32, note String, updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (proj, generation)`

var systemTablesDDL = []string{
	definitionsDDL, liveDDL, effectsDDL,
	`CREATE TABLE IF NOT EXISTS ` + checkpointsTable + ` (
  proj LowCardinality(String), generation UInt32, tbl LowCardinality(String),
  topic LowCardinality(String), part UInt32, off UInt64, updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(off) ORDER BY (proj, generation, tbl, topic, part)`,
	generationsDDL,
	`CREATE TABLE IF NOT EXISTS ` + resolvedTable + ` (
  proj LowCardinality(String), generation UInt32, topic LowCardinality(String), part UInt32, off UInt64,
  resolution LowCardinality(String), resolved_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (proj, generation, topic, part, off)`,
}

// EnsureSchema creates Reel's system tables and the generation's tables.
// It is idempotent.
func EnsureSchema(ctx context.Context, conn driver.Conn, l *Layout) error {
	stmts := append([]string(nil), systemDDL...)
	for _, t := range l.tables {
		stmts = append(stmts, t.ddl)
		stmts = append(stmts, upgradeDDL(t.name)...)
		stmts = append(stmts, guardedDDL(t.name, tableGuard(l.Projection.Name, l.Generation))...)
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

// tp is a topic partition.
type tp struct {
	topic     string
	partition int32
}

// positionsSQL reads a table's highest offset per partition; the
// table's positions projection answers it.
func positionsSQL(table string) string {
	return "SELECT _topic, _partition, max(_offset) FROM " + table + " GROUP BY _topic, _partition"
}

// readPositions returns, per topic partition and per physical table, the
// highest offset that table holds: max(_offset) of its rows, or the
// checkpoint written after a batch, whichever is higher. Missing means none.
func readPositions(ctx context.Context, conn driver.Conn, l *Layout) (map[tp][]int64, error) {
	out := map[tp][]int64{}
	get := func(k tp) []int64 {
		v, ok := out[k]
		if !ok {
			v = make([]int64, len(l.tables))
			for i := range v {
				v[i] = -1
			}
			out[k] = v
		}
		return v
	}
	for i, t := range l.tables {
		rows, err := conn.Query(ctx, positionsSQL(t.name))
		if err != nil {
			return nil, fmt.Errorf("read positions of %s: %w", t.name, err)
		}
		for rows.Next() {
			var topic string
			var part uint32
			var off uint64
			if err := rows.Scan(&topic, &part, &off); err != nil {
				rows.Close()
				return nil, err
			}
			v := get(tp{topic, int32(part)})
			v[i] = max(v[i], int64(off))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	idx := map[string]int{}
	for i, t := range l.tables {
		idx[t.logical] = i
	}
	rows, err := conn.Query(ctx, "SELECT tbl, topic, part, max(off) FROM "+checkpointsTable+" WHERE proj = ? AND generation = ? GROUP BY tbl, topic, part",
		l.Projection.Name, uint32(l.Generation))
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tbl, topic string
		var part uint32
		var off uint64
		if err := rows.Scan(&tbl, &topic, &part, &off); err != nil {
			return nil, err
		}
		if i, ok := idx[tbl]; ok {
			v := get(tp{topic, int32(part)})
			v[i] = max(v[i], int64(off))
		}
	}
	return out, rows.Err()
}

// readParked returns, per topic partition, the aggregates that are parked
// and the offset from which each is parked.
func readParked(ctx context.Context, conn driver.Conn, l *Layout) (map[tp]map[string]int64, error) {
	q := fmt.Sprintf(`SELECT _topic, _partition, aggregate_id, min(_offset) FROM %s
WHERE (_topic, _partition, _offset) NOT IN (SELECT topic, part, off FROM %s WHERE proj = ? AND generation = ?)
GROUP BY _topic, _partition, aggregate_id`, l.tables[l.parked].name, resolvedTable)
	rows, err := conn.Query(ctx, q, l.Projection.Name, uint32(l.Generation))
	if err != nil {
		return nil, fmt.Errorf("read parked aggregates: %w", err)
	}
	defer rows.Close()
	out := map[tp]map[string]int64{}
	for rows.Next() {
		var topic, agg string
		var part uint32
		var off uint64
		if err := rows.Scan(&topic, &part, &agg, &off); err != nil {
			return nil, err
		}
		k := tp{topic, int32(part)}
		if out[k] == nil {
			out[k] = map[string]int64{}
		}
		out[k][agg] = int64(off)
	}
	return out, rows.Err()
}

func nowUTC() time.Time { return time.Now().UTC() }
