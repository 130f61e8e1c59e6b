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
	for _, pipelined := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipeline=%v", pipelined), func(t *testing.T) { stateCacheByteBound(t, pipelined) })
	}
}

func stateCacheByteBound(t *testing.T, pipelined bool) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	suffix, shopTopic, seatsTopic := outageSetup(t, brokers, 2)
	names := []string{"orders", "order_saga", "seats"}
	ip := runInProcess(t, ch.Conn, brokers, suffix, names, projectors.BatchEvents(200), projectors.FlushInterval(50*time.Millisecond),
		projectors.StateCacheBytes(8<<10), projectors.Pipeline(pipelined))
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
	ip.stop()
	if evicted == 0 {
		t.Fatal("no state was evicted: the byte bound did not bite")
	}
	st.mu.Lock()
	evs := append([]produced(nil), st.evs...)
	st.mu.Unlock()
	rows, lost, dup, wrong := sumChecks(compareAll(t, ch.Conn, foldEvents(evs), 1, names...))
	t.Logf("SUMMARY %d events, %.0f states evicted; rows compared %d: lost %d, duplicated %d, wrong %d", len(evs), evicted, rows, lost, dup, wrong)
}
