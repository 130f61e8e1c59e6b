//go:build chdb

package chserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

const eventsDDL = `CREATE TABLE events (
	id UInt64, name String, kind LowCardinality(String), amount Int64, at DateTime64(3,'UTC')
) ENGINE = MergeTree ORDER BY id`

// insertEvents sends n rows starting at id from as one batch.
func insertEvents(t testing.TB, c driver.Conn, from, n int) {
	t.Helper()
	ctx := context.Background()
	batch, err := c.PrepareBatch(ctx, "INSERT INTO events")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := from; i < from+n; i++ {
		if err := batch.Append(uint64(i), fmt.Sprintf("event-%d", i), []string{"a", "b", "c"}[i%3], int64(i%1000)-500, at.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

func checkEvents(t testing.TB, c driver.Conn, wantRows uint64, wantSumID uint64) {
	t.Helper()
	var n, sum uint64
	if err := c.QueryRow(context.Background(), "SELECT count(), sum(id) FROM events").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != wantRows || sum != wantSumID {
		t.Fatalf("count, sum(id) = %d, %d; want %d, %d", n, sum, wantRows, wantSumID)
	}
}

func sumTo(n int) uint64 { return uint64(n) * uint64(n-1) / 2 }

func TestBatchInsert200k(t *testing.T) {
	c, _ := testDB(t, testAddr)
	exec(t, c, eventsDDL)
	const n = 200_000
	insertEvents(t, c, 0, n)
	checkEvents(t, c, n, sumTo(n))
	var amount int64
	if err := c.QueryRow(context.Background(), "SELECT sum(amount) FROM events").Scan(&amount); err != nil {
		t.Fatal(err)
	}
	var want int64
	for i := range n {
		want += int64(i%1000) - 500
	}
	if amount != want {
		t.Fatalf("sum(amount) = %d, want %d", amount, want)
	}
	// A large result streams back through the same path.
	rows, err := c.Query(context.Background(), "SELECT id, name FROM events ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for rows.Next() {
		var id uint64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		if id != uint64(seen) || name != fmt.Sprintf("event-%d", seen) {
			t.Fatalf("row %d: %d %q", seen, id, name)
		}
		seen++
	}
	if err := rows.Err(); err != nil || seen != n {
		t.Fatalf("read %d rows, err %v", seen, err)
	}
}

// Every compression clickhouse-go's HTTP transport has: lz4 and zstd as
// ClickHouse-compressed frames (compress/decompress), gzip, deflate and
// brotli as Content-Encoding. Responses are compressed the same way.
func TestCompression(t *testing.T) {
	methods := map[string]clickhouse.CompressionMethod{
		"lz4": clickhouse.CompressionLZ4, "zstd": clickhouse.CompressionZSTD,
		"gzip": clickhouse.CompressionGZIP, "deflate": clickhouse.CompressionDeflate, "br": clickhouse.CompressionBrotli,
	}
	for name, m := range methods {
		t.Run(name, func(t *testing.T) {
			c, _ := testDB(t, testAddr, withCompression(m), func(o *clickhouse.Options) {
				// ClickHouse compresses HTTP responses only when asked to.
				o.Settings = clickhouse.Settings{"enable_http_compression": 1}
			})
			exec(t, c, eventsDDL)
			insertEvents(t, c, 0, 50_000)
			insertEvents(t, c, 50_000, 10)
			checkEvents(t, c, 50_010, sumTo(50_010))
			// A result larger than one response chunk, compressed.
			var n int
			rows, err := c.Query(context.Background(), "SELECT name FROM events")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				n++
			}
			if rows.Err() != nil || n != 50_010 {
				t.Fatalf("read %d rows: %v", n, rows.Err())
			}
			// Errors stay readable.
			err = c.Exec(context.Background(), "SELECT * FROM nosuch")
			var ex *clickhouse.Exception
			if !errors.As(err, &ex) || ex.Code != 60 {
				t.Fatalf("error = %v, want *clickhouse.Exception code 60", err)
			}
		})
	}
}

func TestConcurrentClients(t *testing.T) {
	c, db := testDB(t, testAddr)
	exec(t, c, eventsDDL)
	const clients, batches, per = 8, 5, 2_000
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for k := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := dial(t, testAddr, db)
			for b := range batches {
				from := (k*batches + b) * per
				insertEvents(t, cc, from, per)
				var n uint64
				if err := cc.QueryRow(context.Background(), "SELECT count() FROM events WHERE id >= ? AND id < ?", from, from+per).Scan(&n); err != nil {
					errs <- err
					return
				}
				if n != per {
					errs <- fmt.Errorf("client %d batch %d: %d rows visible", k, b, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := clients * batches * per
	checkEvents(t, c, uint64(total), sumTo(total))
}

// Bodies that are not one Native block from clickhouse-go: plain text
// formats with the statement in the URL, and a statement plus data in the
// body alone, each larger than one append chunk.
func TestInsertTextBodies(t *testing.T) {
	c, db := testDB(t, testAddr)
	exec(t, c, "CREATE TABLE kv (k UInt64, v String) ENGINE = MergeTree ORDER BY k")
	var b strings.Builder
	const n = 100_000
	for i := range n {
		fmt.Fprintf(&b, "%d\tvalue %d with some padding to make the body larger than a chunk\n", i, i)
	}
	post(t, "/?database="+db+"&query=INSERT+INTO+kv+FORMAT+TabSeparated", b.String())
	post(t, "/?database="+db, "INSERT INTO kv FORMAT TabSeparated\n"+b.String())
	post(t, "/?database="+db, "INSERT INTO kv VALUES (1, 'x'), (2, 'y')")
	var cnt uint64
	if err := c.QueryRow(context.Background(), "SELECT count() FROM kv").Scan(&cnt); err != nil || cnt != 2*n+2 {
		t.Fatalf("count = %d, %v; want %d", cnt, err, 2*n+2)
	}
}
