package projectors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// TestQueuePausesPastBytes: fetching pauses once the bytes waiting reach
// the bound — however few records they are — and resumes when the worker
// takes them.
func TestQueuePausesPastBytes(t *testing.T) {
	var pauses, resumes int
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pending"})
	q := newQueue(newWaiting(64<<10), 0, gauge, func() { pauses++ }, func() { resumes++ })
	rec := func(size int) *kgo.Record { return &kgo.Record{Key: []byte("k"), Value: make([]byte, size)} }

	q.push([]*kgo.Record{rec(1000), rec(1000)})
	if pauses != 0 || q.backlog() {
		t.Fatalf("paused (%d) or behind (%v) at %d bytes of a 64 KiB bound", pauses, q.backlog(), 2*recordSize(rec(1000)))
	}
	q.push([]*kgo.Record{rec(40 << 10), rec(30 << 10)}) // 4 records, past 64 KiB
	if pauses != 1 || !q.backlog() {
		t.Fatalf("%d pauses after 4 records of ~72 KiB (want 1); backlog %v", pauses, q.backlog())
	}
	q.push([]*kgo.Record{rec(10)})
	if pauses != 1 {
		t.Fatalf("paused again while paused: %d pauses", pauses)
	}
	select {
	case <-q.ready:
	case <-time.After(time.Second):
		t.Fatal("no ready signal")
	}
	var n int
	chunks, _ := q.take()
	for _, c := range chunks {
		n += len(c)
	}
	if n != 5 || resumes != 1 || q.backlog() {
		t.Fatalf("took %d records with %d resumes (want 5 and 1); backlog after %v", n, resumes, q.backlog())
	}
	if g := testutil.ToFloat64(gauge); g != 0 {
		t.Fatalf("pending bytes gauge %v after the take; want 0", g)
	}
	// Empty again: the bound counts from zero.
	q.push([]*kgo.Record{rec(60 << 10)})
	if pauses != 1 {
		t.Fatalf("paused below the bound after a take: %d pauses", pauses)
	}
	if g, want := testutil.ToFloat64(gauge), float64(recordSize(rec(60<<10))); g != want {
		t.Fatalf("pending bytes gauge %v; want %v", g, want)
	}
	q.drop()
	if g := testutil.ToFloat64(gauge); g != 0 {
		t.Fatalf("pending bytes gauge %v after drop; want 0", g)
	}
}

// TestQueuesShareTheBound: a runner's queues pause past their share of
// MaxPendingBytes, and also once all of them together hold the whole of
// it, each after its next chunk; a take gives the bytes back to all.
func TestQueuesShareTheBound(t *testing.T) {
	w := newWaiting(100 << 10)
	w.share.Store(60 << 10) // two partitions' shares would hold 120 KiB
	pauses := map[string]int{}
	queue := func(name string) *queue {
		return newQueue(w, 0, prometheus.NewGauge(prometheus.GaugeOpts{Name: "pending"}), func() { pauses[name]++ }, func() {})
	}
	a, b := queue("a"), queue("b")
	rec := func(size int) []*kgo.Record { return []*kgo.Record{{Value: make([]byte, size)}} }

	a.push(rec(50 << 10))
	b.push(rec(40 << 10))
	if pauses["a"]+pauses["b"] != 0 || w.total.Load() >= 100<<10 {
		t.Fatalf("pauses %v at %d bytes waiting of 100 KiB, each below its 60 KiB share", pauses, w.total.Load())
	}
	b.push(rec(15 << 10)) // b: 55 KiB, below its share; both: past the bound
	if pauses["b"] != 1 || pauses["a"] != 0 {
		t.Fatalf("pauses %v at %d bytes waiting; want b paused by the total alone", pauses, w.total.Load())
	}
	a.take()
	if got, want := w.total.Load(), b.bytes; got != want {
		t.Fatalf("%d bytes waiting in all after a's take; want b's %d", got, want)
	}
	a.push(rec(30 << 10))
	if pauses["a"] != 0 {
		t.Fatalf("a paused at %d bytes waiting in all (bound 100 KiB)", w.total.Load())
	}
	a.drop()
	b.drop()
	if w.total.Load() != 0 {
		t.Fatalf("%d bytes waiting after both dropped", w.total.Load())
	}
}

// TestQueuePausesPastRecords: MaxPending, the bound by count, still works
// beside the byte bound.
func TestQueuePausesPastRecords(t *testing.T) {
	var pauses int
	q := newQueue(newWaiting(1<<30), 3, prometheus.NewGauge(prometheus.GaugeOpts{Name: "test"}), func() { pauses++ }, func() {})
	q.push([]*kgo.Record{{}, {}})
	q.push([]*kgo.Record{{}})
	if pauses != 1 {
		t.Fatalf("%d pauses at 3 records with MaxPending 3; want 1", pauses)
	}
}

// TestStateCacheShrinks: past its byte bound the cache forgets entries
// down to three quarters of it, and its count of bytes stays exact.
func TestStateCacheShrinks(t *testing.T) {
	c := newStateCache(10<<10, 0)
	row := []any{"order-1", "customer-1", uint32(2), int64(3900), time.Time{}}
	for i := range 200 {
		c.put(string(rune('a'+i%26))+string(rune('a'+i/26)), row)
	}
	if !c.over() {
		t.Fatalf("200 entries of %d bytes in a 10 KiB cache are not over it (%d bytes)", entrySize("aa", row), c.bytes)
	}
	n := c.shrink()
	if n == 0 || c.over() || c.bytes > 10<<10/4*3 {
		t.Fatalf("shrink forgot %d entries, %d bytes left (bound %d)", n, c.bytes, 10<<10)
	}
	var sum int64
	for k, e := range c.rows {
		sum += entrySize(k, e.row)
	}
	if sum != c.bytes {
		t.Fatalf("cache counts %d bytes, its entries make %d", c.bytes, sum)
	}
	c.put("aa", nil) // replaced or added: still exact
	c.drop("ab")
	sum = 0
	for k, e := range c.rows {
		sum += entrySize(k, e.row)
	}
	if sum != c.bytes {
		t.Fatalf("after put/drop the cache counts %d bytes, its entries make %d", c.bytes, sum)
	}
}

// TestStateCachesShareTheProjectionsBytes: a runner splits StateCacheBytes
// (and BatchBytes, MaxPendingBytes) among the partitions it holds, so that
// its caches (batches, queues) together stay within it however many
// partitions a process is assigned: a cache that fits the whole bound is
// over its share once three more partitions come, and fits again when
// they go.
func TestStateCachesShareTheProjectionsBytes(t *testing.T) {
	r := &Runner{cfg: defaultCfg(), workers: map[tp]*worker{}}
	r.waiting = newWaiting(r.cfg.MaxPendingBytes)
	r.cfg.StateCacheBytes = 40 << 10
	r.workers[tp{Topic: "t", Partition: 0}] = nil
	r.shareMemory()
	c := newStateCache(r.cfg.StateCacheBytes, 0)
	c.share = &r.cacheShare
	row := []any{"order-1", "customer-1", uint32(2), int64(3900), time.Time{}}
	for i := 0; c.bytes < 20<<10; i++ {
		c.put(fmt.Sprint("k-", i), row)
	}
	if c.over() {
		t.Fatalf("%d bytes are over a partition's share of 40 KiB when it is the only one", c.bytes)
	}
	for p := int32(1); p < 4; p++ {
		r.workers[tp{Topic: "t", Partition: p}] = nil
	}
	r.shareMemory()
	if got := r.cacheShare.Load(); got != 10<<10 {
		t.Fatalf("share of 4 partitions = %d, want %d", got, 10<<10)
	}
	if got, want := r.batchShare.Load(), r.cfg.BatchBytes/4; got != want {
		t.Fatalf("batch share of 4 partitions = %d, want %d", got, want)
	}
	if got, want := r.waiting.share.Load(), r.cfg.MaxPendingBytes/4; got != want {
		t.Fatalf("waiting records' share of 4 partitions = %d, want %d", got, want)
	}
	if !c.over() {
		t.Fatalf("%d bytes are not over a share of 10 KiB", c.bytes)
	}
	if c.shrink(); c.bytes > 10<<10/4*3 {
		t.Fatalf("shrink left %d bytes, over 3/4 of the 10 KiB share", c.bytes)
	}
	for p := int32(1); p < 4; p++ {
		delete(r.workers, tp{Topic: "t", Partition: p})
	}
	r.shareMemory()
	if got := r.cacheShare.Load(); got != 40<<10 {
		t.Fatalf("share of 1 partition = %d, want the whole %d", got, 40<<10)
	}
	// A queue's share stays at least one fetch's share of a partition.
	for p := int32(1); p < 64; p++ {
		r.workers[tp{Topic: "t", Partition: p}] = nil
	}
	r.shareMemory()
	if got, want := r.waiting.share.Load(), r.cfg.FetchMaxPartitionBytes; got != want || r.cfg.MaxPendingBytes/64 >= want {
		t.Fatalf("waiting records' share of 64 partitions = %d, want FetchMaxPartitionBytes %d", got, want)
	}
}

// TestStateCacheForgetsLeastRecentlyUsed: past its bound the cache forgets
// the entries used longest ago; ones looked up recently stay, however
// early they were put.
func TestStateCacheForgetsLeastRecentlyUsed(t *testing.T) {
	c := newStateCache(20<<10, 0)
	row := []any{"order-1", "customer-1", uint32(2), int64(3900), time.Time{}}
	hot := []string{"hot-0", "hot-1", "hot-2", "hot-3"}
	for _, k := range hot {
		c.put(k, row)
	}
	for i := 0; !c.over(); i++ {
		c.tick()
		c.put(fmt.Sprint("cold-", i), row)
		for _, k := range hot {
			if _, known := c.lookup(k); !known {
				t.Fatalf("%s unknown before any shrink", k)
			}
		}
	}
	last := c.clock
	n := c.shrink()
	if n == 0 || c.bytes > c.maxBytes/4*3 {
		t.Fatalf("shrink forgot %d entries, %d bytes left of %d", n, c.bytes, c.maxBytes)
	}
	for _, k := range hot {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s, used at every tick, was forgotten", k)
		}
	}
	// What stayed is the newest: no kept entry is older than a forgotten one.
	oldestKept := last
	for _, e := range c.rows {
		oldestKept = min(oldestKept, e.used)
	}
	for i := 0; uint32(i+1) < oldestKept; i++ {
		if _, ok := c.get(fmt.Sprint("cold-", i)); ok {
			t.Errorf("cold-%d (used at %d) kept while entries used at %d were forgotten", i, i+1, oldestKept)
		}
	}
	if _, ok := c.get(fmt.Sprint("cold-", last-1)); !ok {
		t.Errorf("the newest entry cold-%d was forgotten", last-1)
	}
}

// recorder is a sink that keeps the batches put.
type recorder struct{ got []*batch }

func (r *recorder) put(_ context.Context, b *batch) error { r.got = append(r.got, b); return nil }
func (r *recorder) sync(context.Context) error            { return nil }
func (r *recorder) settle(context.Context) error          { return nil }
func (r *recorder) waiting() bool                         { return false }
func (r *recorder) rejects() []reject                     { return nil }

// TestBatchEndsAtBytes: a batch ends once the estimated bytes of its rows
// and of the records it holds reach BatchBytes, long before BatchEvents.
func TestBatchEndsAtBytes(t *testing.T) {
	r, recs := handRunner(t, "batchbytes", 20)
	r.cfg.BatchEvents = 1000
	r.cfg.BatchBytes = 1000
	r.shareMemory() // no other partition: the whole bound
	k := tp{Topic: handTopic, Partition: 0}
	sink := &recorder{}
	a := newApplier(&partition{r: r, proj: r.proj, layout: r.layout, k: k, claim: claim{k: k}, log: r.log}, sink, noPositions(r), nil)
	if err := a.process(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if len(sink.got) < 3 {
		t.Fatalf("%d batches of 20 events with a 1000-byte bound; want several", len(sink.got))
	}
	for _, b := range sink.got {
		// The bound is checked after each event: a batch is at most one
		// event's rows and record past it.
		if b.bytes < r.cfg.BatchBytes || b.bytes > r.cfg.BatchBytes+800 {
			t.Errorf("batch of %d events holds %d bytes; want the bound %d reached by at most one event", b.events, b.bytes, r.cfg.BatchBytes)
		}
		var held int64
		for _, rec := range b.recs {
			held += recordSize(rec)
		}
		if held == 0 || b.bytes < held+int64(b.events)*rowOverhead {
			t.Errorf("batch of %d events counts %d bytes; its records alone hold %d, its rows at least %d more", b.events, b.bytes, held, int64(b.events)*rowOverhead)
		}
	}
}

// TestBatchGrowsUnderBacklog: past FlushInterval a batch ends at the next
// tick, unless records wait behind it (the worker is behind): then it keeps
// growing toward BatchEvents.
func TestBatchGrowsUnderBacklog(t *testing.T) {
	r, recs := handRunner(t, "backlog", 20)
	r.cfg.BatchEvents = 1000
	r.cfg.FlushInterval = time.Millisecond
	k := tp{Topic: handTopic, Partition: 0}
	sink := &recorder{}
	a := newApplier(&partition{r: r, proj: r.proj, layout: r.layout, k: k, claim: claim{k: k}, log: r.log}, sink, noPositions(r), nil)
	if err := a.process(context.Background(), recs[:10]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := a.tick(context.Background(), true); err != nil || len(sink.got) != 0 {
		t.Fatalf("a tick under backlog ended the batch (%d batches, err %v)", len(sink.got), err)
	}
	if err := a.process(context.Background(), recs[10:]); err != nil {
		t.Fatal(err)
	}
	if err := a.tick(context.Background(), false); err != nil || len(sink.got) != 1 || sink.got[0].events != 20 {
		t.Fatalf("without backlog the tick made %d batches (want one of 20 events), err %v", len(sink.got), err)
	}
}

// TestBatchAgeCountsFromFetch: a batch's FlushInterval counts from when
// its first record was fetched, so records that waited while the last
// batch was made durable are not held another interval.
func TestBatchAgeCountsFromFetch(t *testing.T) {
	r, recs := handRunner(t, "batchage", 20)
	r.cfg.FlushInterval = time.Hour
	k := tp{Topic: handTopic, Partition: 0}
	sink := &recorder{}
	a := newApplier(&partition{r: r, proj: r.proj, layout: r.layout, k: k, claim: claim{k: k}, log: r.log}, sink, noPositions(r), nil)
	a.arrived = time.Now()
	if err := a.process(context.Background(), recs[:10]); err != nil {
		t.Fatal(err)
	}
	if err := a.tick(context.Background(), false); err != nil || len(sink.got) != 0 {
		t.Fatalf("a batch of records fetched just now ended (%d batches, err %v)", len(sink.got), err)
	}
	if err := a.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.arrived = time.Now().Add(-2 * time.Hour) // fetched while the last batch was persisted
	if err := a.process(context.Background(), recs[10:]); err != nil {
		t.Fatal(err)
	}
	if err := a.tick(context.Background(), false); err != nil || len(sink.got) != 2 || sink.got[1].events != 10 {
		t.Fatalf("records fetched two intervals ago still wait (%d batches; want 2), err %v", len(sink.got), err)
	}
}

// TestStateReadsPerTake: the states of every chunk a worker takes are read
// in one query, not one per chunk.
func TestStateReadsPerTake(t *testing.T) {
	p := &projection.Projection{
		Name: "readspertake", Topics: []string{handTopic},
		Tables: []projection.Table{{Name: "seats", State: true, Key: "conference_id",
			Columns: []projection.Column{{Name: "conference_id", Type: "String"}, {Name: "added", Type: "Int64"}}, OrderBy: "conference_id"}},
		Apply: func(_ context.Context, tx projection.Tx, ev schemas.Event) error {
			e, err := schemas.As[events.SeatsAdded](ev)
			if err != nil {
				return err
			}
			var added int64
			if row, ok, err := tx.State(); err != nil {
				return err
			} else if ok {
				added = row[1].(int64)
			}
			return tx.Emit("seats", e.ConferenceID, added+int64(e.Quantity))
		},
	}
	r, recs := handRunnerFor(t, p, 30, func(i int) string { return fmt.Sprint("c", i) })
	k := tp{Topic: handTopic, Partition: 0}
	a := newApplier(&partition{r: r, proj: r.proj, layout: r.layout, k: k, claim: claim{k: k}, log: r.log}, &recorder{}, noPositions(r), nil)
	a.cache.complete = false // as after a restart: every miss is read
	queries := func() uint64 {
		var m dto.Metric
		if err := r.metrics.loadSeconds.WithLabelValues(r.proj.Name).(prometheus.Histogram).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount()
	}
	chunks := [][]*kgo.Record{recs[:10], recs[10:20], recs[20:]}
	a.prefetchChunks(context.Background(), chunks)
	for _, c := range chunks {
		if err := a.process(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if n := queries(); n != 1 {
		t.Fatalf("%d state queries for three chunks taken at once; want 1", n)
	}
}

// TestCompleteCacheForgets: a cache that started complete answers
// "absent" for keys it never saw, loads forgotten ones, and counts a key
// forgotten many times once toward the filter's capacity.
func TestCompleteCacheForgets(t *testing.T) {
	c := newStateCache(1<<20, 0)
	c.complete = true
	row := []any{"k"}
	for i := range 1000 {
		c.put(fmt.Sprint("hot-", i%10), row)
		c.drop(fmt.Sprint("hot-", i%10))
	}
	if c.nForgot != 10 || !c.complete {
		t.Fatalf("10 keys forgotten 100 times each count %d (complete %v)", c.nForgot, c.complete)
	}
	for i := range 10 {
		if _, known := c.lookup(fmt.Sprint("hot-", i)); known {
			t.Fatalf("forgotten key hot-%d is known: it must be loaded", i)
		}
	}
	fp := 0
	for i := range 10000 {
		if _, known := c.lookup(fmt.Sprint("new-", i)); !known {
			fp++
		}
	}
	if fp > 300 {
		t.Fatalf("%d of 10000 never-seen keys not known absent (the filter's false positives should be ~1 %%)", fp)
	}
	for i := range 2 * int(c.forgetCapacity()) { // twice: the filter takes a few for ones it holds
		c.drop(fmt.Sprint("cold-", i))
	}
	if c.complete {
		t.Fatal("past the filter's capacity the cache still trusts its misses")
	}
	if _, known := c.lookup("new-x"); known {
		t.Fatal("an incomplete cache claims to know a key it never saw")
	}
}
