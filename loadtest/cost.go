package loadtest

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/store"
)

// The insert-cost phase says what one of the projector's inserts costs
// ClickHouse and which part of that is Reel's: the same rows of the orders
// State table are inserted one batch at a time, on a quiet server, into a
// plain copy of the table, a copy that keeps the positions projection
// (positions in O(partitions)), and the table behind its fence (the inbox
// and guard view, as the projector writes); a checkpoint insert completes
// a batch's writes. Each insert carries the projector's write settings and
// a deduplication token.

// InsertCost is one setup's inserts.
type InsertCost struct {
	Setup      string  `json:"setup"`
	Rows       int     `json:"rows_per_insert"`
	Inserts    int     `json:"inserts"`
	LatencyMs  float64 `json:"latency_ms"`   // mean, one insert at a time
	QueryCPUMs float64 `json:"query_cpu_ms"` // per insert: CPU of its query threads (user + system)
	MergeMs    float64 `json:"merge_ms"`     // per insert: merge time over the block and a second after
	MergedRows float64 `json:"merged_rows"`  // per inserted row
}

// The setups, in the order the report lists them.
const (
	costPlain     = "plain table"
	costPositions = "+ positions projection"
	costFenced    = "+ fence: inbox and guard view (as the projector writes)"
	costCkpt      = "checkpoint insert (one row per table, through its guard)"
)

// costRounds alternates the setups this many times; costInserts is each
// block's length.
const (
	costRounds  = 2
	costInserts = 20
)

// insertCost measures the setups with batches of the freshness level's
// size and of the run's batch size.
func (r *run) insertCost(ctx context.Context) error {
	p, err := demoProjection("orders", r.prefix)
	if err != nil {
		return err
	}
	src := store.NewLayout(p, 1)
	var state, hist store.PhysTable
	for _, t := range src.Tables {
		switch {
		case t.State:
			state = t
		case t.History:
			hist = t
		}
	}
	if state.Name == "" || hist.Name == "" {
		return fmt.Errorf("orders has no State table with history")
	}
	rows, err := r.readRows(ctx, hist.Name, rowColumns(state), 20000)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("no rows in %s", hist.Name)
	}
	// One partition's rows, in offset order, as a worker writes them.
	partCol := len(state.Columns) + 1
	first, _ := rows[0][partCol].(uint32)
	n := 0
	for n < len(rows) && rows[n][partCol] == first {
		n++
	}
	rows = rows[:n]

	// A scratch projection of the same shape, its own claim and tables.
	scratch := *p
	scratch.Name = p.Name + "_cost"
	l := store.NewLayout(&scratch, 1)
	if err := store.EnsureSchema(ctx, r.conn, l); err != nil {
		return err
	}
	k := store.TopicPartition{Topic: rows[0][len(state.Columns)].(string), Partition: int32(first)}
	epoch := uint64(1)<<32 | 1
	if err := store.RecordClaims(ctx, r.conn, l, "loadtest", 1, []store.Claim{{TopicPartition: k, Epoch: epoch}}); err != nil {
		return err
	}
	var target store.PhysTable
	for _, t := range l.Tables {
		if t.State {
			target = t
		}
	}
	plain, withPos := target.Name+"_plain", target.Name+"_positions"
	for _, q := range []string{
		fmt.Sprintf("CREATE TABLE %s AS %s", plain, target.Name),
		store.DropPositionsDDL(plain),
		fmt.Sprintf("CREATE TABLE %s AS %s", withPos, target.Name),
	} {
		if err := r.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	cols := rowColumns(state)
	direct := func(table string) string { return fmt.Sprintf("INSERT INTO %s (%s)", table, strings.Join(cols, ", ")) }
	types := target.InsertColumns[:len(cols)]

	small := 1000
	if len(r.res.Freshness) > 0 {
		if w := r.res.Freshness[0].Waits; w.Batches > 0 {
			small = max(1, int(math.Round(w.Events/w.Batches)))
		}
	}
	seq := 0
	insert := func(stmt string, colTypes []clickhouse.ColumnNameAndType, batch [][]any, epoch *uint64) error {
		seq++
		token := fmt.Sprintf("loadtest-cost-%d-%d", time.Now().UnixNano(), seq)
		ictx := clickhouse.Context(ctx, clickhouse.WithColumnNamesAndTypes(colTypes),
			clickhouse.WithSettings(chclient.WriteSettings(clickhouse.Settings{"insert_deduplication_token": token})))
		b, err := r.conn.PrepareBatch(ictx, stmt)
		if err != nil {
			return err
		}
		for _, row := range batch {
			if epoch != nil {
				row = append(row[:len(row):len(row)], *epoch)
			}
			if err := b.Append(row...); err != nil {
				_ = b.Abort()
				return err
			}
		}
		return b.Send()
	}
	ckpt := func() error {
		stmt, args := store.CheckpointsInsert(l, k, int64(seq), epoch)
		seq++
		return r.conn.Exec(chclient.WriteContext(ctx, nil), stmt, args...)
	}
	totals := map[string]*InsertCost{}
	var order []string
	block := func(setup string, size int, one func(i int) error) error {
		key := fmt.Sprintf("%s/%d", setup, size)
		c := totals[key]
		if c == nil {
			c = &InsertCost{Setup: setup, Rows: size}
			totals[key] = c
			order = append(order, key)
		}
		ev0, err := readServerEvents(ctx, r.conn)
		if err != nil {
			return err
		}
		var lat time.Duration
		for i := range costInserts {
			t0 := time.Now()
			if err := one(i); err != nil {
				return fmt.Errorf("%s, %d rows: %w", setup, size, err)
			}
			lat += time.Since(t0)
		}
		cpu, err := readServerEvents(ctx, r.conn)
		if err != nil {
			return err
		}
		// Merges the block caused run on after it.
		time.Sleep(time.Second)
		ev1, err := readServerEvents(ctx, r.conn)
		if err != nil {
			return err
		}
		c.Inserts += costInserts
		c.LatencyMs += lat.Seconds() * 1000
		c.QueryCPUMs += (cpu["UserTimeMicroseconds"] + cpu["SystemTimeMicroseconds"] - ev0["UserTimeMicroseconds"] - ev0["SystemTimeMicroseconds"]) / 1000
		c.MergeMs += ev1["MergeTotalMilliseconds"] - ev0["MergeTotalMilliseconds"]
		c.MergedRows += ev1["MergedRows"] - ev0["MergedRows"]
		return nil
	}
	batchOf := func(size, i int) [][]any {
		out := make([][]any, size)
		for j := range out {
			out[j] = rows[(i*size+j)%len(rows)]
		}
		return out
	}
	for range costRounds {
		for _, size := range []int{small, r.cfg.Batch} {
			for _, s := range []struct {
				setup, stmt string
				types       []clickhouse.ColumnNameAndType
				epoch       *uint64
			}{
				{costPlain, direct(plain), types, nil},
				{costPositions, direct(withPos), types, nil},
				{costFenced, target.Insert, target.InsertColumns, &epoch},
			} {
				if err := block(s.setup, size, func(i int) error { return insert(s.stmt, s.types, batchOf(size, i), s.epoch) }); err != nil {
					return err
				}
			}
		}
		if err := block(costCkpt, len(l.Tables), func(int) error { return ckpt() }); err != nil {
			return err
		}
	}
	for _, key := range order {
		c := totals[key]
		rowsIn := float64(c.Inserts * c.Rows)
		if c.Setup == costCkpt {
			rowsIn = float64(c.Inserts * len(l.Tables))
		}
		c.MergedRows /= rowsIn
		c.LatencyMs /= float64(c.Inserts)
		c.QueryCPUMs /= float64(c.Inserts)
		c.MergeMs /= float64(c.Inserts)
		r.res.InsertCost = append(r.res.InsertCost, *c)
		r.progress("insert cost: %s, %d rows: %.1f ms, query CPU %.1f ms, merges %.1f ms per insert", c.Setup, c.Rows, c.LatencyMs, c.QueryCPUMs, c.MergeMs)
	}
	return nil
}

// writeInsertCost renders the insert-cost phase and what it implies for
// the freshness level's inserts.
func writeInsertCost(f printf, res *Results) {
	if len(res.InsertCost) == 0 {
		return
	}
	f("\n### What one insert costs ClickHouse\n\n")
	f("The same rows (the orders State table's, one partition's, in offset order) inserted one batch at a time into copies of that table on the quiet server after the projector stopped: %d inserts per setup and size, in %d alternating rounds, each with the projector's write settings and its own deduplication token. Query CPU is the insert's query threads (`system.events` user + system time), where the guard view and the positions projection are computed; merges are `MergeTotalMilliseconds` over each block and the second after it.\n\n", costInserts*costRounds, costRounds)
	f("| setup | rows per insert | latency ms | query CPU ms | merges ms | rows merged per row inserted |\n|---|---:|---:|---:|---:|---:|\n")
	by := map[string]InsertCost{}
	for _, c := range res.InsertCost {
		f("| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", c.Setup, c.Rows, c.LatencyMs, c.QueryCPUMs, c.MergeMs, c.MergedRows)
		by[fmt.Sprintf("%s/%d", c.Setup, c.Rows)] = c
	}
	small := res.InsertCost[0].Rows
	plain, pos, fenced, ck := by[fmt.Sprintf("%s/%d", costPlain, small)], by[fmt.Sprintf("%s/%d", costPositions, small)], by[fmt.Sprintf("%s/%d", costFenced, small)], InsertCost{}
	for _, c := range res.InsertCost {
		if c.Setup == costCkpt {
			ck = c
		}
	}
	cost := func(c InsertCost) float64 { return c.QueryCPUMs + c.MergeMs }
	if cost(plain) > 0 {
		f("\nAt %d rows an insert, the positions projection adds %.1f ms (%.0f %%) and the fence %.1f ms more (%.0f %% of the plain insert): query CPU plus merges, %.1f ms for a plain insert against %.1f ms as the projector writes.",
			small, cost(pos)-cost(plain), 100*(cost(pos)-cost(plain))/cost(plain), cost(fenced)-cost(pos), 100*(cost(fenced)-cost(pos))/cost(plain), cost(plain), cost(fenced))
	}
	if len(res.Freshness) > 0 {
		w := res.Freshness[0].Waits
		if w.Seconds > 0 {
			perSec := (w.Inserts + w.Checkpoints) / w.Seconds
			cores := (w.Inserts*cost(fenced) + w.Checkpoints*cost(ck)) / 1000 / w.Seconds
			f(" At %.0f %% of the max rate the projector made %.1f inserts a second (%.0f table inserts, %.0f checkpoint inserts in %.1f s): at these costs, about %.2f of the machine's %d cores of ClickHouse work, most of it fixed per insert rather than per row (compare the two sizes).",
				res.Freshness[0].Fraction*100, perSec, w.Inserts, w.Checkpoints, w.Seconds, cores, res.Machine.CPUs)
		}
	}
	f("\n")
}
