package rebuild

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/projectors"
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
}

// Equal reports whether the table matched (or was skipped).
func (d TableDiff) Equal() bool { return d.Skipped != "" || len(d.Differ) == 0 }

func (d TableDiff) String() string {
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
	return fmt.Sprintf("%-32s %-18s rows %d vs %d, checksum %016x vs %016x%s: %s", d.Table, d.Method, d.RowsA, d.RowsB, d.SumA, d.SumB, ex, res)
}

// Comparison is the verdict of Compare.
type Comparison struct {
	A, B      int                         // generations
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
func Compare(ctx context.Context, conn driver.Conn, p *projectors.Projection, a, b int) (Comparison, error) {
	la, lb := projectors.NewLayout(p, a), projectors.NewLayout(p, b)
	pa, err := projectors.AppliedPositions(ctx, conn, la)
	if err != nil {
		return Comparison{}, err
	}
	pb, err := projectors.AppliedPositions(ctx, conn, lb)
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
	ta, tb := la.Tables(), lb.Tables()
	for i := range ta {
		d, err := compareTable(ctx, conn, ta[i], tb[i], pos)
		if err != nil {
			return cmp, err
		}
		cmp.Tables = append(cmp.Tables, d)
	}
	return cmp, nil
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
func hashColumns(t projectors.PhysTable) []string {
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
	for _, c := range projectors.SystemColumns() {
		cols = append(cols, c.Name)
	}
	return cols
}

func compareTable(ctx context.Context, conn driver.Conn, ta, tb projectors.PhysTable, pos map[string]map[int32]int64) (TableDiff, error) {
	d := TableDiff{Table: ta.Logical}
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
	return d, rows.Err()
}
