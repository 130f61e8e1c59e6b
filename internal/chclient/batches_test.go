package chclient_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/testenv"
)

// TestBatchesKeepFewIdleConnections: batches sent at once through an
// OpenSplit connection use a pool of their own, which keeps at most
// BatchIdleConns of its connections (each holding a buffer as large as
// the largest batch it sent) once they are done; queries keep theirs.
func TestBatchesKeepFewIdleConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts, err := chclient.Options(testenv.ClickHouseServer(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxOpenConns, opts.MaxIdleConns = 16, 16
	conn, err := chclient.OpenSplit(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	table := fmt.Sprintf("split_test_%d", time.Now().UnixNano())
	if err := conn.Exec(ctx, "CREATE TABLE "+table+" (x UInt64) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+table)

	const batches, rows = 8, 10_000
	var prepared, wg sync.WaitGroup
	prepared.Add(batches)
	errs := make([]error, batches)
	for i := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
			prepared.Done()
			if err != nil {
				errs[i] = err
				return
			}
			for j := range rows {
				if errs[i] = b.Append(uint64(i*rows + j)); errs[i] != nil {
					return
				}
			}
			prepared.Wait() // every batch holds its connection at once
			errs[i] = b.Send()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != batches*rows {
		t.Fatalf("%d rows landed; want %d", n, batches*rows)
	}
	st := chclient.BatchPool(conn).Stats()
	if st.Idle > chclient.BatchIdleConns {
		t.Fatalf("the batch pool keeps %d idle connections after %d batches at once; want at most %d", st.Idle, batches, chclient.BatchIdleConns)
	}
	if st.MaxIdleConns != chclient.BatchIdleConns || st.MaxOpenConns != 16 {
		t.Fatalf("batch pool bounds %d idle, %d open; want %d, 16", st.MaxIdleConns, st.MaxOpenConns, chclient.BatchIdleConns)
	}
	if q := conn.Stats(); q.MaxIdleConns != 16 || q.Open > 2 {
		t.Fatalf("query pool: %d open, %d idle at most; want the batches' connections elsewhere and 16 idle", q.Open, q.MaxIdleConns)
	}
}
