package rebuild

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// TableDiff is the shadow comparison of one logical table.
type TableDiff struct {
	Table    string // logical name
	Method   string // what was compared, see Compare
	RowsA    uint64 // generation A (the live one)
	RowsB    uint64 // generation B (the rebuilt one)
	SumA     uint64 // sum of cityHash64 over the compared rows (wraps)
	SumB     uint64
	Excluded uint64   // State tables: aggregates whose row is past the position in either generation
	Differ   []string // topic/partition where counts or checksums differ
	Skipped  string   // why the table was not compared ("" : compared)
	// Only in one generation's definition: the table, or columns of it
	// (left out of the checksum; named in the report).
	OnlyA, OnlyB       bool
	ColumnsA, ColumnsB []string
	// Row-level breakdown, computed when the table differs. Rows are
	// identified by the aggregate key (State tables) or by their position
	// (others); Changed counts identities present in both with other
	// values. Samples are a few of each, as "identity: A | B".
	OnlyOld, OnlyNew, Changed uint64
	Samples                   []string
}

// Equal reports whether the table matched (or was skipped).
func (d TableDiff) Equal() bool {
	return !d.OnlyA && !d.OnlyB && (d.Skipped != "" || len(d.Differ) == 0)
}

func (d TableDiff) String() string {
	switch {
	case d.OnlyA:
		return fmt.Sprintf("%-32s only in the live generation's definition (dropped)", d.Table)
	case d.OnlyB:
		return fmt.Sprintf("%-32s only in the new definition (new table)", d.Table)
	}
	cols := ""
	if len(d.ColumnsA) > 0 {
		cols += fmt.Sprintf(" [columns only in live: %s]", strings.Join(d.ColumnsA, ", "))
	}
	if len(d.ColumnsB) > 0 {
		cols += fmt.Sprintf(" [columns only in new: %s]", strings.Join(d.ColumnsB, ", "))
	}
	if d.Skipped != "" {
		return fmt.Sprintf("%-32s skipped: %s", d.Table, d.Skipped)
	}
	res := "equal"
	if !d.Equal() {
		res = fmt.Sprintf("DIFFERENT in %v", d.Differ)
	}
	ex := ""
	if d.Excluded > 0 {
		ex = fmt.Sprintf(" (%d aggregates past the position excluded)", d.Excluded)
	}
	if !d.Equal() {
		res += fmt.Sprintf("; only old %d, only new %d, changed %d", d.OnlyOld, d.OnlyNew, d.Changed)
		for _, smp := range d.Samples {
			res += "\n      " + smp
		}
	}
	return fmt.Sprintf("%-32s %-18s rows %d vs %d, checksum %016x vs %016x%s%s: %s", d.Table, d.Method, d.RowsA, d.RowsB, d.SumA, d.SumB, ex, cols, res)
}

// Comparison is the verdict of Compare.
type Comparison struct {
	A, B      int                        // generations
	Positions map[string]map[int32]int64 // compared up to these offsets (inclusive)
	Tables    []TableDiff
}

// Equal reports whether every compared table matched.
func (c Comparison) Equal() bool {
	for _, t := range c.Tables {
		if !t.Equal() {
			return false
		}
	}
	return true
}

// Compare compares generation a with generation b of p at the same
// positions: per partition, up to the lower of the two generations'
// applied positions (read once at the start, so both sides see one cut).
//
// What is compared, per table:
//   - MergeTree tables (plain tables, a State table's _history, parked):
//     every row with _offset ≤ the position: count and sum(cityHash64) of
//     all user and system columns. Rows at or below an applied position
//     never change, so the two reads need no common snapshot. For parked
//     rows, parked_at, error and headers are left out (wall-clock and
//     free text, not the projection's output). Map columns are hashed
//     with their keys sorted (mapSort): their pair order is whatever order
//     the Go map handed them to the driver.
//   - The State table (ReplacingMergeTree): its rows collapse, so the state
//     "as of" an older position may be gone. Both tables are read FINAL in
//     ONE query; an aggregate whose current row is past the position in
//     either generation is excluded (and counted in Excluded), every other
//     aggregate's row is the state at the position in both and must match.
//     When the projection keeps History, the history comparison covers the
//     excluded aggregates' versions as well.
//   - Tables with other engines (Summing-, Aggregating-, Collapsing-…)
//     merge rows, so there is no "rows up to a position" to compare; they
//     are skipped and named in the report.
func Compare(ctx context.Context, conn driver.Conn, p *projection.Projection, a, b int) (Comparison, error) {
	// Each generation as its own definition made it: after a change the
	// two have different tables and columns. Common tables are compared
	// over their common columns; the rest is reported, never an error.
	la, err := store.StoredLayout(ctx, conn, p, a)
	if err != nil {
		return Comparison{}, err
	}
	lb, err := store.StoredLayout(ctx, conn, p, b)
	if err != nil {
		return Comparison{}, err
	}
	pa, err := store.AppliedPositions(ctx, conn, la)
	if err != nil {
		return Comparison{}, err
	}
	pb, err := store.AppliedPositions(ctx, conn, lb)
	if err != nil {
		return Comparison{}, err
	}
	pos := map[string]map[int32]int64{}
	for topic, parts := range pa {
		for part, x := range parts {
			y, ok := pb[topic][part]
			if !ok {
				y = -1
			}
			setPos(pos, topic, part, min(x, y))
		}
	}
	for topic, parts := range pb {
		for part := range parts {
			if _, ok := pa[topic][part]; !ok {
				setPos(pos, topic, part, -1)
			}
		}
	}
	cmp := Comparison{A: a, B: b, Positions: pos}
	ta, tb := la.Tables, lb.Tables
	byName := map[string]store.PhysTable{}
	for _, t := range tb {
		byName[t.Logical] = t
	}
	seen := map[string]bool{}
	for _, x := range ta {
		y, ok := byName[x.Logical]
		if !ok {
			cmp.Tables = append(cmp.Tables, TableDiff{Table: x.Logical, OnlyA: true})
			continue
		}
		seen[x.Logical] = true
		d, err := compareTable(ctx, conn, x, y, pos)
		if err != nil {
			return cmp, err
		}
		cmp.Tables = append(cmp.Tables, d)
	}
	for _, y := range tb {
		if !seen[y.Logical] {
			cmp.Tables = append(cmp.Tables, TableDiff{Table: y.Logical, OnlyB: true})
		}
	}
	return cmp, nil
}

// commonColumns keeps the user columns both tables have with one type
// (in a's order) and names the others.
func commonColumns(a, b store.PhysTable) (ta store.PhysTable, onlyA, onlyB []string) {
	bt := map[string]string{}
	for _, c := range b.Columns {
		bt[c.Name] = c.Type
	}
	at := map[string]bool{}
	ta = a
	ta.Columns = nil
	for _, c := range a.Columns {
		at[c.Name] = true
		if t, ok := bt[c.Name]; ok && t == c.Type {
			ta.Columns = append(ta.Columns, c)
		} else {
			onlyA = append(onlyA, c.Name)
		}
	}
	for _, c := range b.Columns {
		if !at[c.Name] || bt[c.Name] != typeOf(a, c.Name) {
			onlyB = append(onlyB, c.Name)
		}
	}
	return ta, onlyA, onlyB
}

func typeOf(t store.PhysTable, col string) string {
	for _, c := range t.Columns {
		if c.Name == col {
			return c.Type
		}
	}
	return ""
}

func setPos(m map[string]map[int32]int64, topic string, p int32, off int64) {
	if m[topic] == nil {
		m[topic] = map[int32]int64{}
	}
	m[topic][p] = off
}

// posExpr is an SQL expression giving the compared position of a row's
// partition (-1 for partitions not in pos).
func posExpr(pos map[string]map[int32]int64) string {
	var arms []string
	topics := make([]string, 0, len(pos))
	for t := range pos {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		for p, o := range pos[t] {
			arms = append(arms, fmt.Sprintf("_topic = %s AND _partition = %d, %d", quote(t), p, o))
		}
	}
	if len(arms) == 0 {
		return "toInt64(-1)"
	}
	return "toInt64(multiIf(" + strings.Join(arms, ", ") + ", -1))"
}

func quote(s string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'" }

var collapsing = []string{"Replacing", "Summing", "Aggregating", "Collapsing", "Graphite", "Coalescing"}

func collapses(engine string) bool {
	for _, c := range collapsing {
		if strings.Contains(engine, c) {
			return true
		}
	}
	return false
}

// hashColumns lists the columns a table's checksum covers.
func hashColumns(t store.PhysTable) []string {
	var cols []string
	for _, c := range t.Columns {
		if t.Parked && (c.Name == "parked_at" || c.Name == "error" || c.Name == "headers") {
			continue
		}
		if strings.HasPrefix(c.Type, "Map(") {
			// A Map keeps its pairs in insertion order, and Go maps hand
			// them to the driver in random order: hash them sorted.
			cols = append(cols, "mapSort("+c.Name+")")
			continue
		}
		cols = append(cols, c.Name)
	}
	for _, c := range store.SystemColumns() {
		cols = append(cols, c.Name)
	}
	return cols
}

func compareTable(ctx context.Context, conn driver.Conn, ta, tb store.PhysTable, pos map[string]map[int32]int64) (TableDiff, error) {
	d := TableDiff{Table: ta.Logical}
	ta, d.ColumnsA, d.ColumnsB = commonColumns(ta, tb)
	if !ta.State && collapses(ta.Engine) {
		d.Skipped = fmt.Sprintf("engine %s merges rows; no rows-up-to-a-position to compare", ta.Engine)
		return d, nil
	}
	h := "cityHash64(" + strings.Join(hashColumns(ta), ", ") + ")"
	var q string
	if !ta.State {
		d.Method = "rows ≤ position"
		q = fmt.Sprintf(`SELECT _topic, _partition, countIf(g = 1), sumIf(h, g = 1), countIf(g = 2), sumIf(h, g = 2), toUInt64(0)
FROM (SELECT _topic, _partition, _offset, %[1]s AS h, 1 AS g FROM %[2]s UNION ALL SELECT _topic, _partition, _offset, %[1]s AS h, 2 AS g FROM %[3]s)
WHERE toInt64(_offset) <= %[4]s GROUP BY _topic, _partition`, h, ta.Name, tb.Name, posExpr(pos))
	} else {
		d.Method = "FINAL ≤ position"
		q = fmt.Sprintf(`SELECT _topic, _partition, sumIf(na, ok), sumIf(ha, ok), sumIf(nb, ok), sumIf(hb, ok), countIf(NOT ok)
FROM (
  SELECT k, _topic, _partition, max(_offset) AS mo, countIf(g = 1) AS na, sumIf(h, g = 1) AS ha, countIf(g = 2) AS nb, sumIf(h, g = 2) AS hb,
    toInt64(mo) <= %[4]s AS ok
  FROM (SELECT %[5]s AS k, _topic, _partition, _offset, %[1]s AS h, 1 AS g FROM %[2]s FINAL
        UNION ALL SELECT %[5]s AS k, _topic, _partition, _offset, %[1]s AS h, 2 AS g FROM %[3]s FINAL)
  GROUP BY k, _topic, _partition
) GROUP BY _topic, _partition`, h, ta.Name, tb.Name, posExpr(pos), ta.Key)
	}
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return d, fmt.Errorf("compare %s with %s: %w", ta.Name, tb.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var topic string
		var part uint32
		var na, nb, ex uint64
		var ha, hb uint64
		if err := rows.Scan(&topic, &part, &na, &ha, &nb, &hb, &ex); err != nil {
			return d, fmt.Errorf("compare %s: %w", ta.Name, err)
		}
		d.RowsA += na
		d.RowsB += nb
		d.SumA += ha
		d.SumB += hb
		d.Excluded += ex
		if na != nb || ha != hb {
			d.Differ = append(d.Differ, fmt.Sprintf("%s/%d (%d vs %d rows)", topic, part, na, nb))
		}
	}
	sort.Strings(d.Differ)
	if err := rows.Err(); err != nil {
		return d, err
	}
	if len(d.Differ) > 0 {
		if err := breakdown(ctx, conn, &d, ta, tb, h, pos); err != nil {
			return d, err
		}
	}
	return d, nil
}

// samplesPerKind is how many rows of each kind a report shows.
const samplesPerKind = 3

// breakdown counts, for a table that differs, the identities (aggregate
// key, or position for tables of events) only in A, only in B and in both
// with other values, and samples a few of each with both sides' values.
func breakdown(ctx context.Context, conn driver.Conn, d *TableDiff, ta, tb store.PhysTable, h string, pos map[string]map[int32]int64) error {
	id := "concat(_topic, '/', toString(_partition), '@', toString(_offset))"
	final := ""
	if ta.State {
		id, final = "toString("+ta.Key+")", " FINAL"
	}
	show := "toString(tuple(" + strings.Join(columnNamesOf(ta), ", ") + "))"
	q := fmt.Sprintf(`SELECT countIf(na > 0 AND nb = 0), countIf(nb > 0 AND na = 0), countIf(na > 0 AND nb > 0 AND (na != nb OR ha != hb)),
  groupArrayIf(%[6]d)(concat('only old ', id, ': ', va), na > 0 AND nb = 0),
  groupArrayIf(%[6]d)(concat('only new ', id, ': ', vb), nb > 0 AND na = 0),
  groupArrayIf(%[6]d)(concat('changed  ', id, ': ', va, ' | ', vb), na > 0 AND nb > 0 AND (na != nb OR ha != hb))
FROM (
  SELECT id, countIf(g = 1) AS na, sumIf(h, g = 1) AS ha, countIf(g = 2) AS nb, sumIf(h, g = 2) AS hb,
    anyIf(v, g = 1) AS va, anyIf(v, g = 2) AS vb, max(toInt64(_offset) <= p) AS ok
  FROM (SELECT %[1]s AS id, _offset, %[7]s AS p, %[2]s AS h, %[3]s AS v, 1 AS g FROM %[4]s%[8]s
        UNION ALL SELECT %[1]s AS id, _offset, %[7]s AS p, %[2]s AS h, %[3]s AS v, 2 AS g FROM %[5]s%[8]s)
  GROUP BY id
) WHERE ok`, id, h, show, ta.Name, tb.Name, samplesPerKind, posExpr(pos), final)
	if ta.State {
		// An aggregate is compared when its row is at or below the
		// position in both generations (as in compareTable).
		q = strings.Replace(q, "max(toInt64(_offset) <= p) AS ok", "min(toInt64(_offset) <= p) AS ok", 1)
	}
	var oo, on, ch []string
	if err := conn.QueryRow(ctx, q).Scan(&d.OnlyOld, &d.OnlyNew, &d.Changed, &oo, &on, &ch); err != nil {
		return fmt.Errorf("compare rows of %s with %s: %w", ta.Name, tb.Name, err)
	}
	d.Samples = append(append(append(d.Samples, oo...), on...), ch...)
	return nil
}

func columnNamesOf(t store.PhysTable) []string {
	var out []string
	for _, c := range t.Columns {
		out = append(out, c.Name)
	}
	return out
}
