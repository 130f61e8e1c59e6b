//go:build chdb

package chserver

import (
	"context"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The engine features Reel's projections rely on, through clickhouse-go.
func TestReplacingMergeTreeFinal(t *testing.T) {
	ctx := context.Background()
	c, _ := testDB(t, testAddr)
	exec(t, c, "CREATE TABLE cur (id UInt64, state String, ver UInt64) ENGINE = ReplacingMergeTree(ver) ORDER BY id")
	for v, state := range []string{"new", "paid", "shipped"} {
		b, err := c.PrepareBatch(ctx, "INSERT INTO cur")
		if err != nil {
			t.Fatal(err)
		}
		for id := range 3 {
			if err := b.Append(uint64(id), state, uint64(v)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	var all, final uint64
	if err := c.QueryRow(ctx, "SELECT count() FROM cur").Scan(&all); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SELECT countIf(state = 'shipped') FROM cur FINAL").Scan(&final); err != nil {
		t.Fatal(err)
	}
	if all != 9 || final != 3 {
		t.Fatalf("rows %d (want 9 unmerged), FINAL shipped %d (want 3)", all, final)
	}
}

func TestViewsAndExchange(t *testing.T) {
	ctx := context.Background()
	c, _ := testDB(t, testAddr)
	exec(t, c, "CREATE TABLE g1 (v String) ENGINE = MergeTree ORDER BY v")
	exec(t, c, "CREATE TABLE g2 (v String) ENGINE = MergeTree ORDER BY v")
	exec(t, c, "INSERT INTO g1 VALUES ('one')")
	exec(t, c, "INSERT INTO g2 VALUES ('two')")
	read := func(obj string) string {
		t.Helper()
		var v string
		if err := c.QueryRow(ctx, "SELECT v FROM "+obj).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	exec(t, c, "CREATE OR REPLACE VIEW cur AS SELECT v FROM g1")
	if got := read("cur"); got != "one" {
		t.Fatalf("view on g1: %q", got)
	}
	exec(t, c, "CREATE OR REPLACE VIEW cur AS SELECT v FROM g2")
	if got := read("cur"); got != "two" {
		t.Fatalf("view on g2: %q", got)
	}
	exec(t, c, "EXCHANGE TABLES g1 AND g2")
	if read("g1") != "two" || read("g2") != "one" {
		t.Fatal("EXCHANGE TABLES did not swap")
	}
}

func TestInsertDeduplicationToken(t *testing.T) {
	ctx := context.Background()
	c, _ := testDB(t, testAddr)
	exec(t, c, "CREATE TABLE d (id UInt64) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100")
	send := func(token string, ids ...uint64) {
		t.Helper()
		qctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
		b, err := c.PrepareBatch(qctx, "INSERT INTO d")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if err := b.Append(id); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	send("p0-100", 1, 2, 3)
	send("p0-100", 1, 2, 3) // a replay of the same batch
	send("p0-200", 4)
	var n uint64
	if err := c.QueryRow(ctx, "SELECT count() FROM d").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("count = %d, want 4 (the repeated token dropped)", n)
	}
}
