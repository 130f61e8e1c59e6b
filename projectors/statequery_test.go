package projectors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// stateTable creates a State table of generation 1 and writes versions
// of aggregates a-0 … a-<keys-1> to it in parts inserts (merges stopped,
// so that every insert stays a part): an aggregate's versions spread over
// the parts, on partition k % 2, as a live table holds them between
// merges. It returns each aggregate's latest version ("id status total").
func stateTable(tb testing.TB, ch testenv.CH, keys, parts, rowsPerPart int) (projection.Table, string, map[string]string) {
	tb.Helper()
	ctx := context.Background()
	t := projection.Table{Name: "s", State: true, Key: "id", OrderBy: "id", Columns: []projection.Column{
		{Name: "id", Type: "String"}, {Name: "status", Type: "LowCardinality(String)"}, {Name: "total", Type: "Int64"}}}
	p := &projection.Projection{Name: "sq", Topics: []string{"t"}, Tables: []projection.Table{t}}
	l := store.NewLayout(p, 1)
	if err := store.EnsureSchema(ctx, ch.Conn, l); err != nil {
		tb.Fatal(err)
	}
	pt := l.Tables[l.ByUser[0]].Name
	if err := ch.Conn.Exec(ctx, "SYSTEM STOP MERGES "+pt); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	latest := map[string]string{}
	now := time.Now()
	off := 0
	for range parts {
		b, err := ch.Conn.PrepareBatch(ctx, "INSERT INTO "+pt+" (id, status, total, _topic, _partition, _offset, _event_ts)")
		if err != nil {
			tb.Fatal(err)
		}
		for range rowsPerPart {
			k := rng.IntN(keys)
			id, status := fmt.Sprintf("a-%d", k), []string{"placed", "paid", "shipped"}[rng.IntN(3)]
			if err := b.Append(id, status, int64(off), "t", uint32(k%2), uint64(off), now); err != nil {
				tb.Fatal(err)
			}
			latest[id] = fmt.Sprintf("%s %s %d", id, status, off)
			off++
		}
		if err := b.Send(); err != nil {
			tb.Fatal(err)
		}
	}
	return t, pt, latest
}

// someKeys returns n keys of partition 0 (even key numbers).
func someKeys(rng *rand.Rand, keys, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("a-%d", rng.IntN(keys/2)*2)
	}
	return out
}

// finalQuery is the state read stateQuery replaced: FINAL keeps, per
// sorting key, the row with the highest _offset.
func finalQuery(t projection.Table, table string) string {
	return fmt.Sprintf("SELECT %s FROM %s FINAL WHERE _topic = ? AND _partition = ? AND %s IN (?)", store.ColumnList(t.Columns), table, t.Key)
}

// readStates runs a state read of keys on partition 0: "id status total"
// per row, sorted.
func readStates(tb testing.TB, ch testenv.CH, q string, keys []string) []string {
	tb.Helper()
	rows, err := ch.Conn.Query(context.Background(), q, "t", uint32(0), keys)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, status string
		var total int64
		if err := rows.Scan(&id, &status, &total); err != nil {
			tb.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %d", id, status, total))
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// The state read answers each key's latest version, as written, and what
// FINAL answers.
func TestStateQueryReadsTheLatestVersion(t *testing.T) {
	ch := testenv.ClickHouse(t)
	const keys = 2000
	st, pt, latest := stateTable(t, ch, keys, 12, 1000)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		ks := someKeys(rng, keys, 23)
		var want []string
		for _, k := range ks {
			if v, ok := latest[k]; ok {
				want = append(want, v)
			}
		}
		slices.Sort(want)
		want = slices.Compact(want)
		if got := readStates(t, ch, stateQuery(st, pt), ks); !slices.Equal(got, want) {
			t.Fatalf("keys %v:\nstate query %v\nwritten     %v", ks, got, want)
		}
		if got := readStates(t, ch, finalQuery(st, pt), ks); !slices.Equal(got, want) {
			t.Fatalf("keys %v:\nFINAL   %v\nwritten %v", ks, got, want)
		}
	}
}

// BenchmarkStateQuery reads 23 aggregates' states (about a chunk's misses
// in the load test) from a State table of 300,000 aggregates in 40 parts
// of 10,000 rows: the runtime's query, and FINAL, the one it replaced.
func BenchmarkStateQuery(b *testing.B) {
	ch := testenv.ClickHouse(b)
	const keys = 300_000
	st, pt, _ := stateTable(b, ch, keys, 40, 10_000)
	for _, c := range []struct{ name, q string }{{"limit-1-by", stateQuery(st, pt)}, {"final", finalQuery(st, pt)}} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			for b.Loop() {
				readStates(b, ch, c.q, someKeys(rng, keys, 23))
			}
		})
	}
}
