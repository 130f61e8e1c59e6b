package loadtest

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/projectors/store"
)

// The CPU profile shows what the projector computes; in most phases it
// mostly waits. Waits and ServerWork say what for, over the same window:
// the projector's own timers (how long its workers waited for inserts and
// for state reads) and ClickHouse's counters (system.events: the time its
// queries and merges took, by kind).

// Waits is what the projector's workers waited for during a phase, from
// its metrics (deltas over the phase).
type Waits struct {
	Seconds       float64 `json:"seconds"`        // the phase's wall time
	Events        float64 `json:"events"`         // events applied
	Batches       float64 `json:"batches"`        // batches made durable
	FlushSeconds  float64 `json:"flush_seconds"`  // Σ time to make a batch durable (all inserts and checkpoints)
	Inserts       float64 `json:"inserts"`        // table inserts
	InsertSeconds float64 `json:"insert_seconds"` // Σ their latency
	Checkpoints   float64 `json:"checkpoints"`    // checkpoint inserts
	CkptSeconds   float64 `json:"checkpoint_seconds"`
	StateReads    float64 `json:"state_reads"`   // queries reading aggregate states
	StateSeconds  float64 `json:"state_seconds"` // Σ their latency
	StateFound    float64 `json:"state_found"`   // aggregates those reads found
	StateAbsent   float64 `json:"state_absent"`  // aggregates they did not (new ones)
	Evicted       float64 `json:"evicted"`       // states the caches forgot
	Groups        float64 `json:"groups"`        // group commits (one insert per table for all their batches)
	GroupBatches  float64 `json:"group_batches"` // batches they made durable
}

func waitsBetween(a, b childStats, d time.Duration) Waits {
	h := func(name string, i int) float64 { return b.Hist[name][i] - a.Hist[name][i] }
	c := func(name string) float64 { return b.Counts[name] - a.Counts[name] }
	return Waits{
		Seconds:       d.Seconds(),
		Events:        c("reel_projector_events_total"),
		Batches:       h("reel_projector_flush_duration_seconds", 0),
		FlushSeconds:  h("reel_projector_flush_duration_seconds", 1),
		Inserts:       h("reel_projector_insert_duration_seconds", 0),
		InsertSeconds: h("reel_projector_insert_duration_seconds", 1),
		Checkpoints:   h("reel_projector_insert_duration_seconds/"+store.CheckpointsTable, 0),
		CkptSeconds:   h("reel_projector_insert_duration_seconds/"+store.CheckpointsTable, 1),
		StateReads:    h("reel_projector_state_load_duration_seconds", 0),
		StateSeconds:  h("reel_projector_state_load_duration_seconds", 1),
		StateFound:    c("reel_projector_state_loads_total/found"),
		StateAbsent:   c("reel_projector_state_loads_total/absent"),
		Evicted:       c("reel_projector_state_evictions_total"),
		Groups:        h("reel_projector_group_batches", 0),
		GroupBatches:  h("reel_projector_group_batches", 1),
	}
}

// serverEvents are the system.events counters ServerWork reads.
var serverEvents = []string{
	"SelectQuery", "SelectQueryTimeMicroseconds", "InsertQuery", "InsertQueryTimeMicroseconds",
	"InsertedRows", "MergedRows", "MergeTotalMilliseconds", "Merge",
	"UserTimeMicroseconds", "SystemTimeMicroseconds", "QueryPipelineBuildMicroseconds",
	"QueryPlanOptimizeMicroseconds", "QueryAnalysisMicroseconds",
}

// ServerWork is ClickHouse's work during a phase (system.events deltas;
// times are sums over concurrent queries, not CPU).
type ServerWork struct {
	Seconds float64            `json:"seconds"`
	Events  map[string]float64 `json:"events"`
}

func readServerEvents(ctx context.Context, conn driver.Conn) (map[string]float64, error) {
	rows, err := conn.Query(ctx, "SELECT event, value FROM system.events WHERE event IN (?)", serverEvents)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var name string
		var v uint64
		if err := rows.Scan(&name, &v); err != nil {
			return nil, err
		}
		out[name] = float64(v)
	}
	return out, rows.Err()
}

// watchWork snapshots the projector's metrics and ClickHouse's counters;
// the function it returns takes the second snapshot and returns the
// deltas (zero values and the error when a snapshot failed).
func (r *run) watchWork(ctx context.Context) func() (Waits, ServerWork, error) {
	events := func() (map[string]float64, error) {
		if r.conn == nil { // no server (report tests)
			return nil, nil
		}
		return readServerEvents(ctx, r.conn)
	}
	t0 := time.Now()
	st0, err0 := r.child.stats(ctx)
	ev0, errS := events()
	return func() (Waits, ServerWork, error) {
		d := time.Since(t0)
		st1, err1 := r.child.stats(ctx)
		ev1, errS1 := events()
		var w Waits
		var s ServerWork
		var err error
		if err0 == nil && err1 == nil {
			w = waitsBetween(st0, st1, d)
		} else {
			err = fmt.Errorf("projector metrics: %v %v", err0, err1)
		}
		if errS == nil && errS1 == nil && ev1 != nil {
			s = ServerWork{Seconds: d.Seconds(), Events: map[string]float64{}}
			for k, v := range ev1 {
				s.Events[k] = v - ev0[k]
			}
		} else {
			err = fmt.Errorf("system.events: %v %v", errS, errS1)
		}
		return w, s, err
	}
}

// writeWaits renders a phase's Waits and ServerWork.
func writeWaits(f printf, w Waits, s ServerWork) {
	if w.Seconds > 0 {
		per := func(n, d float64) float64 {
			if d == 0 {
				return 0
			}
			return n / d
		}
		f("What the projector waited for (its metrics over the phase, %.1f s; times are sums over the partitions' workers, which run in parallel):\n\n", w.Seconds)
		f("| | count | Σ seconds | ms each | per 1000 events |\n|---|---:|---:|---:|---:|\n")
		f("| batches made durable (inserts + checkpoints) | %.0f | %.1f | %.1f | %.1f ms |\n", w.Batches, w.FlushSeconds, 1000*per(w.FlushSeconds, w.Batches), 1e6*per(w.FlushSeconds, w.Events))
		f("| table inserts (within the above; non-State tables at once, then the State table) | %.0f | %.1f | %.1f | %.1f ms |\n", w.Inserts, w.InsertSeconds, 1000*per(w.InsertSeconds, w.Inserts), 1e6*per(w.InsertSeconds, w.Events))
		f("| checkpoint inserts (within the above, after the tables) | %.0f | %.1f | %.1f | %.1f ms |\n", w.Checkpoints, w.CkptSeconds, 1000*per(w.CkptSeconds, w.Checkpoints), 1e6*per(w.CkptSeconds, w.Events))
		f("| state reads (aggregates the cache did not know: %.0f found, %.0f absent; %.0f states forgotten) | %.0f | %.1f | %.1f | %.1f ms |\n",
			w.StateFound, w.StateAbsent, w.Evicted, w.StateReads, w.StateSeconds, 1000*per(w.StateSeconds, w.StateReads), 1e6*per(w.StateSeconds, w.Events))
		f("\n%.0f events in %.0f batches: %.0f events per batch", w.Events, w.Batches, per(w.Events, w.Batches))
		if w.Groups > 0 {
			f("; %.0f group commits (one insert per table for the batches of the partitions that flushed together): %.2f batches per group", w.Groups, per(w.GroupBatches, w.Groups))
		}
		f(".\n\n")
	}
	if s.Seconds > 0 {
		e := s.Events
		sec := func(k string, scale float64) float64 { return e[k] / scale }
		f("What ClickHouse did over the phase (`system.events` deltas, %.1f s; query times are sums over concurrent queries, merges run beside them):\n\n", s.Seconds)
		f("| work | count | Σ seconds |\n|---|---:|---:|\n")
		f("| SELECT queries (state reads, positions, the load test's own) | %.0f | %.1f |\n", e["SelectQuery"], sec("SelectQueryTimeMicroseconds", 1e6))
		f("| INSERT queries | %.0f | %.1f |\n", e["InsertQuery"], sec("InsertQueryTimeMicroseconds", 1e6))
		f("| merges (%.0f rows) | %.0f | %.1f |\n", e["MergedRows"], e["Merge"], sec("MergeTotalMilliseconds", 1e3))
		f("| planning of all queries: analysis, plan optimization, pipeline building | | %.1f |\n",
			sec("QueryAnalysisMicroseconds", 1e6)+sec("QueryPlanOptimizeMicroseconds", 1e6)+sec("QueryPipelineBuildMicroseconds", 1e6))
		f("| CPU of query threads (user + system) | | %.1f |\n\n", sec("UserTimeMicroseconds", 1e6)+sec("SystemTimeMicroseconds", 1e6))
	}
}
