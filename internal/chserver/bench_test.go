//go:build chdb

package chserver

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkInsert sends 100k-row batches (String, LowCardinality, UInt64,
// Int64, DateTime64) through clickhouse-go over HTTP and reports rows/s,
// for the whole Append+Send and for Send alone.
func BenchmarkInsert(b *testing.B) { benchInsert(b, 100_000) }

// BenchmarkInsert1M is the same with 1M-row batches.
func BenchmarkInsert1M(b *testing.B) { benchInsert(b, 1_000_000) }

func benchInsert(b *testing.B, rows int) {
	c, _ := testDB(b, testAddr)
	exec(b, c, eventsDDL)
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var send time.Duration
	b.ResetTimer()
	for it := 0; b.Loop(); it++ {
		batch, err := c.PrepareBatch(ctx, "INSERT INTO events")
		if err != nil {
			b.Fatal(err)
		}
		base := it * rows
		for i := base; i < base+rows; i++ {
			if err := batch.Append(uint64(i), fmt.Sprintf("event-%d", i), "kind-a", int64(i), at); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
		send += time.Since(t0)
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows*b.N)/send.Seconds(), "send-rows/s")
}

// BenchmarkSelectOne is the latency of a trivial query ("SELECT 1",
// Native) through clickhouse-go over HTTP.
func BenchmarkSelectOne(b *testing.B) {
	c := dial(b, testAddr, "default")
	ctx := context.Background()
	for b.Loop() {
		var v uint8
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&v); err != nil || v != 1 {
			b.Fatal(v, err)
		}
	}
}
