package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/examples/demo/projectors/shop"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors/store"
)

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// killedConn is a connection whose process dies at the first statement
// containing marker: that statement and every later one fail.
type killedConn struct {
	driver.Conn
	marker string
	dead   bool
}

func (c *killedConn) Exec(ctx context.Context, q string, args ...any) error {
	if c.dead = c.dead || strings.Contains(q, c.marker); c.dead {
		return errors.New("killed")
	}
	return c.Conn.Exec(ctx, q, args...)
}

// A process killed while it creates a fresh generation's tables (the
// SIGKILL test's first replica, killed early) leaves some tables behind;
// the next start must create the rest and run, not adopt the tables that
// exist and refuse the State table as a destructive addition.
func TestFreshGenerationKilledMidCreation(t *testing.T) {
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	p := shop.Sales()
	l := store.NewLayout(p, 1)
	tables := l.Tables
	last := tables[len(tables)-1] // the State table: created after the others
	if !last.State {
		t.Fatalf("%s is not the State table; the test needs one created last", last.Name)
	}
	kc := &killedConn{Conn: ch.Conn, marker: "CREATE TABLE IF NOT EXISTS " + last.Name + " "}
	if _, err := store.Evolve(ctx, kc, l, true); err == nil {
		t.Fatal("Evolve did not reach the State table's DDL")
	}
	var n uint64
	mustDo(t, ch.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", tables[0].Name).Scan(&n))
	if n != 1 {
		t.Fatalf("%s was not created before the kill: the test does not reproduce a half-created generation", tables[0].Name)
	}
	m, err := store.Evolve(ctx, ch.Conn, store.NewLayout(shop.Sales(), 1), true)
	if err != nil {
		t.Fatalf("the next start refused the half-created generation: %v", err)
	}
	if len(m.Changes) != 0 {
		t.Errorf("changes %v, want none", m.Changes)
	}
	mustDo(t, ch.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", last.Name).Scan(&n))
	if n != 1 {
		t.Errorf("%s was not created by the next start", last.Name)
	}
}
