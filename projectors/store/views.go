package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/projection"
)

// liveTable holds, per projection, which generation its views serve: one
// row per switch, the latest wins. A switch between two generations is ONE
// insert into it, so every view of the projection changes at once.
const liveTable = "_reel_live"

var liveDDL = `CREATE TABLE IF NOT EXISTS ` + liveTable + ` (
  proj LowCardinality(String), generation UInt32, switched_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(switched_at) ORDER BY proj`

// liveScalar is the scalar subquery a switchable view reads the served
// generation from. Every view of a projection uses the same text, so a
// query that reads several of them evaluates it once: ClickHouse computes
// a scalar subquery once per query and reuses the value for identical
// ones (the property TestViewsSwitchTogether checks under a query loop).
func liveScalar(proj string) string {
	return fmt.Sprintf("(SELECT argMax(generation, switched_at) FROM %s WHERE proj = %s)", liveTable, quote(proj))
}

// LiveServed returns the generation the projection's views serve (0: none
// recorded).
func LiveServed(ctx context.Context, conn driver.Conn, proj string) (int, error) {
	var g uint32
	if err := conn.QueryRow(ctx, "SELECT "+liveScalar(proj)).Scan(&g); err != nil {
		return 0, fmt.Errorf("read the generation %s's views serve: %w", proj, err)
	}
	return int(g), nil
}

func recordLive(ctx context.Context, conn driver.Conn, proj string, gen int, onlyIfOther bool) error {
	if onlyIfOther {
		cur, err := LiveServed(ctx, conn, proj)
		if err != nil || cur == gen {
			return err
		}
	}
	// The server's clock in microseconds: a bound time.Time parameter
	// would have whole seconds, and two switches within one second would
	// tie in argMax.
	if err := conn.Exec(chclient.WriteContext(ctx, nil), "INSERT INTO "+liveTable+" (proj, generation, switched_at) SELECT ?, ?, now64(6, 'UTC')", proj, uint32(gen)); err != nil {
		return fmt.Errorf("switch %s's views to g%d: %w", proj, gen, err)
	}
	return nil
}

// SwitchViews moves every view of a projection from generation from to
// generation to at once, for any reader:
//
//  1. Each view is re-created as the union of both generations' queries,
//     each branch filtered by "the served generation is mine" (read from
//     _reel_live by a scalar subquery). Until step 2 that is from for
//     every view, so re-creating them one by one changes no answer.
//  2. One insert into _reel_live makes to the served generation: a query
//     sees either the old row set or the new one (an insert is one part),
//     and reads it once however many views it joins.
//
// The branch of the generation not served has a constant false filter
// after the scalar is substituted: ClickHouse reads nothing for it. When
// the two definitions give a view other columns, from's branch is padded
// to to's columns (missing ones are the type's default, others cast), so
// the union is valid; views only in from are left in place (drop them
// after), views only in to serve nothing until the switch.
//
// The views stay unions until the live generation's runner starts (it
// re-creates them for itself alone), so a rollback right after is also
// one insert.
func SwitchViews(ctx context.Context, conn driver.Conn, from, to *Layout) error {
	proj := to.Projection.Name
	if err := conn.Exec(ctx, liveDDL); err != nil {
		return fmt.Errorf("create %s: %w", liveTable, err)
	}
	if err := recordLive(ctx, conn, proj, from.Generation, true); err != nil {
		return err
	}
	olds := map[string]string{}
	for _, v := range from.viewBodies() {
		olds[v.Name] = v.SQL
	}
	cur := liveScalar(proj)
	for _, v := range to.viewBodies() {
		branchTo := fmt.Sprintf("SELECT * FROM (%s) WHERE %s = %d", v.SQL, cur, to.Generation)
		sql := branchTo
		if old, ok := olds[v.Name]; ok {
			oldSel, err := padTo(ctx, conn, old, v.SQL)
			if err != nil {
				return fmt.Errorf("view %s: %w", v.Name, err)
			}
			sql = fmt.Sprintf("%s FROM (%s) WHERE %s = %d UNION ALL %s", oldSel, old, cur, from.Generation, branchTo)
		}
		stmt := fmt.Sprintf("CREATE OR REPLACE VIEW %s AS %s", v.Name, sql)
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("switchable view %s of %s: %w\n%s", v.Name, proj, err, stmt)
		}
	}
	return recordLive(ctx, conn, proj, to.Generation, false)
}

// padTo returns the SELECT list that gives query old's rows the columns of
// query cur, by name: "SELECT *" when they already match.
func padTo(ctx context.Context, conn driver.Conn, old, cur string) (string, error) {
	oc, err := describe(ctx, conn, old)
	if err != nil {
		return "", err
	}
	cc, err := describe(ctx, conn, cur)
	if err != nil {
		return "", err
	}
	same := len(oc) == len(cc)
	for i := 0; same && i < len(cc); i++ {
		same = oc[i] == cc[i]
	}
	if same {
		return "SELECT *", nil
	}
	have := map[string]string{}
	for _, c := range oc {
		have[c.Name] = c.Type
	}
	var sel []string
	for _, c := range cc {
		switch t, ok := have[c.Name]; {
		case !ok:
			sel = append(sel, fmt.Sprintf("defaultValueOfTypeName(%s) AS %s", quote(c.Type), c.Name))
		case t != c.Type:
			sel = append(sel, fmt.Sprintf("CAST(%s AS %s) AS %s", c.Name, c.Type, c.Name))
		default:
			sel = append(sel, c.Name)
		}
	}
	return "SELECT " + strings.Join(sel, ", "), nil
}

func describe(ctx context.Context, conn driver.Conn, query string) ([]projection.Column, error) {
	rows, err := conn.Query(ctx, "DESCRIBE ("+query+")")
	if err != nil {
		return nil, fmt.Errorf("describe: %w", err)
	}
	defer rows.Close()
	var out []projection.Column
	cols := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		var name, typ string
		vals[0], vals[1] = &name, &typ
		for i := 2; i < len(vals); i++ {
			vals[i] = new(string)
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		out = append(out, projection.Column{Name: name, Type: typ})
	}
	return out, rows.Err()
}
