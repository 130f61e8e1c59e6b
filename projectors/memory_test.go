package projectors_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
)

// TestStateCacheByteBound: with a state cache of a few KiB per partition
// (room for a few dozen of the hundreds of aggregates streamed), states
// are forgotten and read back from the State tables again and again, and
// every table still equals the fold of the events — also when the
// committer inserts one batch while the applier builds the next
// (Pipeline), where a state may be forgotten only once it is durable.
func TestStateCacheByteBound(t *testing.T) {
	// 8 KiB a partition (its two partitions share the bytes): states are
	// forgotten and read back all the time; 96 KiB: now and then, while
	// most aggregates are new ones a complete cache must not query.
	for _, c := range []struct {
		bytes     int64
		pipelined bool
	}{{16 << 10, false}, {16 << 10, true}, {192 << 10, false}} {
		t.Run(fmt.Sprintf("bytes=%d,pipeline=%v", c.bytes, c.pipelined), func(t *testing.T) { stateCacheByteBound(t, c.bytes, c.pipelined) })
	}
}

func stateCacheByteBound(t *testing.T, cacheBytes int64, pipelined bool) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	suffix, shopTopic, seatsTopic := outageSetup(t, brokers, 2)
	names := []string{"orders", "order_saga", "seats"}
	ip := runInProcess(t, ch.Conn, brokers, suffix, names, projectors.BatchEvents(200), projectors.FlushInterval(50*time.Millisecond),
		projectors.StateCacheBytes(cacheBytes), projectors.Pipeline(pipelined))
	stop := make(chan struct{})
	st := startStream(t, brokers, newWorld(23, strings.TrimPrefix(suffix, "."), 300, 40), suffix, 2000, stop)
	time.Sleep(4 * time.Second)
	close(stop)
	must(t, st.wait())
	waitAllApplied(t, context.Background(), appliedCheck(ch.Conn, 1, wantOffsets(st, shopTopic, seatsTopic, names)), 2*time.Minute)
	if err := ip.crashed(); err != nil {
		t.Fatal(err)
	}
	evicted := ip.counter("reel_projector_state_evictions_total")
	absent := ip.counter("reel_projector_state_loads_total", "absent")
	found := ip.counter("reel_projector_state_loads_total", "found")
	ip.stop()
	if evicted == 0 {
		t.Fatal("no state was evicted: the byte bound did not bite")
	}
	st.mu.Lock()
	evs := append([]produced(nil), st.evs...)
	st.mu.Unlock()
	// The generation started empty, so its caches are complete: a
	// forgotten aggregate is read back from ClickHouse, but a new one is
	// known absent without a query (but for the Bloom filter's ~1 % false
	// positives), even after evictions.
	if limit := float64(len(evs)) / 200; absent > limit {
		t.Fatalf("%.0f new aggregates were looked up in ClickHouse (at most %.0f): a complete cache stopped trusting its misses", absent, limit)
	}
	t.Logf("%.0f states evicted, %.0f read back, %.0f lookups of absent aggregates", evicted, found, absent)
	rows, lost, dup, wrong := sumChecks(compareAll(t, ch.Conn, foldEvents(evs), 1, names...))
	t.Logf("SUMMARY %d events, %.0f states evicted; rows compared %d: lost %d, duplicated %d, wrong %d", len(evs), evicted, rows, lost, dup, wrong)
}
