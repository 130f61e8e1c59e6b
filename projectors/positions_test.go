package projectors

import (
	"context"
	"strings"
	"testing"
)

// TestPositionsReadFromProjection: reading a table's positions (at every
// assignment, rebuild progress tick and cut-over barrier) is answered by
// the positions projection, a row per part and partition, not by a scan of
// the table's rows.
func TestPositionsReadFromProjection(t *testing.T) {
	ctx := context.Background()
	r, recs := handRunner(t, "positions", 50)
	w := newWorker(r, testClaim(t, r, tp{handTopic, 0}), noPositions(r), nil)
	for i := 0; i < len(recs); i += 10 {
		w.a.process(ctx, recs[i:i+10])
		if err := w.a.flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The log table holds rows (the parked table none: nothing to plan).
	for _, pt := range r.layout.tables[r.layout.byUser[0] : r.layout.byUser[0]+1] {
		rows, err := r.conn.Query(ctx, "EXPLAIN "+positionsSQL(pt.name))
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "\n"), "ReadFromMergeTree (_reel_positions)") {
			t.Errorf("positions of %s are not read from its projection:\n%s", pt.name, strings.Join(plan, "\n"))
		}
	}
	pos, err := readPositions(ctx, r.conn, r.layout)
	if err != nil {
		t.Fatal(err)
	}
	if got := pos[tp{handTopic, 0}][r.layout.byUser[0]]; got != 49 {
		t.Errorf("position %d, want 49", got)
	}
}
