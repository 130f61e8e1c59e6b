package projectors

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

// stateCache holds the current State-table row of a partition's
// aggregates (a nil row: known absent), bounded in bytes by an estimate
// of each entry's size (its key and values, see rowSize). Past its bound
// it forgets the least recently used entries: aggregates are touched in
// bursts (a saga's steps, a hot product), and a cache that forgot the
// ones in flight would read each back from ClickHouse. Only the applier's
// goroutine uses it.
//
// A cache can be complete: the State table holds no row of the partition
// that the cache does not know, except for the keys it forgot (evicted or
// dropped). Then a miss of a key never forgotten means "absent" without a
// query — what keeps a fresh generation's replay, where most events start
// a new aggregate, from asking ClickHouse about every one. Forgotten keys
// go into a Bloom filter (no false negatives: a forgotten key is always
// loaded from ClickHouse; a false positive costs one query). Past the
// filter's capacity the cache stops being complete and every miss is
// loaded.
type stateCache struct {
	rows       map[string]cacheEntry
	clock      uint32 // advanced by the applier per chunk of records
	bytes      int64
	maxBytes   int64         // the bound when share is nil
	share      *atomic.Int64 // the bound: this partition's share of its projection's (see Runner.shareMemory)
	maxEntries int           // 0: no bound by count

	complete  bool
	forgotten *bloom.BloomFilter // nil until the first key is forgotten
	forgetCap uint               // the keys forgotten can hold, set when it is made
	nForgot   uint               // distinct keys in forgotten (as far as the filter tells)
}

// limit is the cache's byte bound now: a share of the projection's, which
// changes with the number of partitions the process holds.
func (c *stateCache) limit() int64 {
	if c.share != nil {
		return c.share.Load()
	}
	return c.maxBytes
}

// forgetCapacity is how many forgotten keys a complete cache tracks
// before it stops being complete: a thirty-second of the byte bound (at
// least 64 Ki keys), so the filter (≈ 1.2 bytes per key at 1 % false
// positives) costs under 4 % of the cache's bound.
func (c *stateCache) forgetCapacity() uint {
	return uint(max(64<<10, c.limit()/32))
}

func newStateCache(maxBytes int64, maxEntries int) *stateCache {
	return &stateCache{rows: map[string]cacheEntry{}, maxBytes: maxBytes, maxEntries: maxEntries}
}

// cacheEntry is a cached row and the clock of its last use.
type cacheEntry struct {
	row  []any
	used uint32
}

// tick advances the clock: entries used before it are older than the
// ones used after.
func (c *stateCache) tick() { c.clock++ }

// entryOverhead approximates what a map entry costs beyond its key's bytes
// and its values: the key's and the slice's headers, the map's bucket.
const entryOverhead = 96

func (c *stateCache) get(key string) (row []any, known bool) {
	e, known := c.rows[key]
	return e.row, known
}

func (c *stateCache) put(key string, row []any) {
	if old, ok := c.rows[key]; ok {
		c.bytes -= entrySize(key, old.row)
	}
	c.rows[key] = cacheEntry{row: row, used: c.clock}
	c.bytes += entrySize(key, row)
}

// lookup returns the aggregate's row: known is false when ClickHouse must
// be asked; a known nil row is an absent aggregate.
func (c *stateCache) lookup(key string) (row []any, known bool) {
	if e, ok := c.rows[key]; ok {
		if e.used != c.clock {
			e.used = c.clock
			c.rows[key] = e
		}
		return e.row, true
	}
	if c.complete && (c.forgotten == nil || !c.forgotten.TestString(key)) {
		return nil, true
	}
	return nil, false
}

// mayMiss reports whether a lookup can answer "unknown": false for a
// complete cache that has forgotten nothing, where prefetching is wasted.
func (c *stateCache) mayMiss() bool { return !c.complete || c.forgotten != nil }

// drop forgets key's row: its next lookup loads it from ClickHouse.
func (c *stateCache) drop(key string) {
	if old, ok := c.rows[key]; ok {
		c.bytes -= entrySize(key, old.row)
		delete(c.rows, key)
	}
	c.forget(key)
}

func (c *stateCache) forget(key string) {
	if !c.complete {
		return
	}
	if c.forgotten == nil {
		c.forgetCap = c.forgetCapacity()
		c.forgotten = bloom.NewWithEstimates(c.forgetCap, 0.01)
	}
	if c.nForgot >= c.forgetCap {
		c.complete, c.forgotten = false, nil
		return
	}
	// A hot aggregate forgotten again and again takes its place once.
	if !c.forgotten.TestOrAddString(key) {
		c.nForgot++
	}
}

// over reports whether the cache is past its bounds.
func (c *stateCache) over() bool {
	return c.bytes > c.limit() || (c.maxEntries > 0 && len(c.rows) > c.maxEntries)
}

// shrink forgets the least recently used entries until the cache holds
// at most three quarters of its bounds (so that it does not shrink at
// every batch), and returns how many it forgot. Two passes over the
// entries: the bytes and entries last used at each clock value, then the
// forgetting of those used before the cut.
func (c *stateCache) shrink() int {
	targetBytes := c.limit() / 4 * 3
	targetEntries := len(c.rows)
	if c.maxEntries > 0 {
		targetEntries = min(targetEntries, c.maxEntries/4*3)
	}
	if c.bytes <= targetBytes && len(c.rows) <= targetEntries {
		return 0
	}
	type use struct {
		bytes   int64
		entries int
	}
	byClock := map[uint32]use{}
	for k, e := range c.rows {
		u := byClock[e.used]
		u.bytes += entrySize(k, e.row)
		u.entries++
		byClock[e.used] = u
	}
	clocks := make([]uint32, 0, len(byClock))
	for t := range byClock {
		clocks = append(clocks, t)
	}
	slices.Sort(clocks)
	// Every entry used before cut goes; of those used at cut, as many as
	// it takes (map order).
	bytes, entries := c.bytes, len(c.rows)
	cut := clocks[len(clocks)-1]
	for _, t := range clocks {
		u := byClock[t]
		if bytes-u.bytes <= targetBytes && entries-u.entries <= targetEntries {
			cut = t
			break
		}
		bytes -= u.bytes
		entries -= u.entries
	}
	n := 0
	evict := func(keep func(cacheEntry) bool) {
		for k, e := range c.rows {
			if keep(e) {
				continue
			}
			c.bytes -= entrySize(k, e.row)
			delete(c.rows, k)
			c.forget(k)
			n++
		}
	}
	evict(func(e cacheEntry) bool { return e.used >= cut })
	evict(func(e cacheEntry) bool {
		return e.used != cut || (c.bytes <= targetBytes && len(c.rows) <= targetEntries)
	})
	return n
}

func entrySize(key string, row []any) int64 { return entryOverhead + int64(len(key)) + rowSize(row) }

// rowSize estimates the memory of a row's values: their interface words
// plus what they point to. Cheap: no reflection.
func rowSize(vals []any) int64 {
	n := int64(16 * len(vals))
	for _, v := range vals {
		n += valueSize(v)
	}
	return n
}

func valueSize(v any) int64 {
	switch v := v.(type) {
	case nil, bool, int8, uint8:
		return 0
	case string:
		return 16 + int64(len(v))
	case []byte:
		return 24 + int64(len(v))
	case time.Time:
		return 24
	case []string:
		n := int64(24)
		for _, s := range v {
			n += 16 + int64(len(s))
		}
		return n
	case map[string]string:
		n := int64(48)
		for k, s := range v {
			n += 32 + int64(len(k)+len(s))
		}
		return n
	case []any:
		return 24 + rowSize(v)
	default:
		return 8 // numbers, and a guess for the rest
	}
}
