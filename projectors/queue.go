package projectors

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// queue hands a partition's fetched records from the poll loop (push) to
// the worker's goroutine (take). push never blocks: the poll loop must
// not, see runner.go. Past its share of the runner's bound (or
// maxRecords, when set) waiting, or while all the runner's queues hold
// the whole bound, it pauses the partition's fetching until the worker
// takes them: that is the backpressure that bounds memory while
// ClickHouse is slow or down.
type queue struct {
	w          *waiting
	maxRecords int              // 0: no bound by count
	gauge      prometheus.Gauge // bytes waiting, summed over the runner's queues
	pause      func()
	resume     func()

	mu     sync.Mutex
	chunks [][]*kgo.Record
	since  time.Time // when the oldest waiting chunk was pushed
	bytes  int64
	n      int
	paused bool
	ready  chan struct{} // capacity 1: records are waiting
}

// waiting is what a runner's queues share: MaxPendingBytes, each queue's
// share of it (Runner.shareMemory) and the bytes waiting in all of them.
// A fetch response lands in the queues of several partitions at once: the
// total pauses each of them after one chunk once the bound is reached,
// where their shares alone would let every partition fill its own.
type waiting struct {
	limit int64
	share atomic.Int64
	total atomic.Int64
}

func newWaiting(limit int64) *waiting {
	w := &waiting{limit: limit}
	w.share.Store(limit)
	return w
}

func newQueue(w *waiting, maxRecords int, gauge prometheus.Gauge, pause, resume func()) *queue {
	return &queue{w: w, maxRecords: maxRecords, gauge: gauge, pause: pause, resume: resume, ready: make(chan struct{}, 1)}
}

// recordOverhead is what a record costs beyond its key, value and headers.
const recordOverhead = int64(unsafe.Sizeof(kgo.Record{}))

// recordSize estimates the memory a fetched record holds.
func recordSize(r *kgo.Record) int64 {
	n := recordOverhead + int64(len(r.Key)+len(r.Value))
	for _, h := range r.Headers {
		n += int64(len(h.Key)+len(h.Value)) + 40 // the header's strings and slice
	}
	return n
}

// push appends records for the worker.
func (q *queue) push(recs []*kgo.Record) {
	var size int64
	for _, r := range recs {
		size += recordSize(r)
	}
	now := time.Now()
	q.mu.Lock()
	if len(q.chunks) == 0 {
		q.since = now
	}
	q.chunks = append(q.chunks, recs)
	q.bytes += size
	q.n += len(recs)
	total := q.w.total.Add(size)
	if !q.paused && (q.bytes >= q.w.share.Load() || total >= q.w.limit || (q.maxRecords > 0 && q.n >= q.maxRecords)) {
		q.paused = true
		// Under mu, so that a concurrent take cannot resume first and
		// leave the partition paused for good.
		q.pause()
	}
	q.gauge.Add(float64(size))
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// backlog reports whether at least half the queue's byte bound waits (or
// fetching is paused): the worker is behind the partition, and batches
// had better fill up than end on time.
func (q *queue) backlog() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.paused || q.bytes >= q.w.share.Load()/2
}

// take returns every waiting chunk and when the oldest was pushed, and
// resumes fetching if it was paused.
func (q *queue) take() ([][]*kgo.Record, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.chunks
	q.clear()
	if q.paused {
		q.paused = false
		q.resume()
	}
	return out, q.since
}

// drop forgets the waiting records (the worker stopped; the next owner
// re-reads them).
func (q *queue) drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.clear()
}

// clear empties the queue and its share of the gauge; q.mu is held.
func (q *queue) clear() {
	q.gauge.Sub(float64(q.bytes))
	q.w.total.Add(-q.bytes)
	q.chunks, q.bytes, q.n = nil, 0, 0
}
