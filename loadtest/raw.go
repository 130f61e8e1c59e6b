package loadtest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors/store"
)

// rawConsume is the Kafka limit: a franz-go group consumer of the run's
// topics from the start, same isolation level as the projector, counting
// records and doing nothing else. Timed from the first record to the last,
// so the group join is not counted (the projector's steady rate does not
// include it either).
func (r *run) rawConsume(ctx context.Context) error {
	total := r.pd.produced.Load()
	var topics []string
	for _, p := range projections {
		pr, err := demoProjection(p, r.prefix)
		if err != nil {
			return err
		}
		topics = append(topics, pr.Topics...)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.cfg.Brokers...), kgo.ConsumerGroup(fmt.Sprintf("reel-loadtest-raw-%s%d", r.prefix, time.Now().UnixNano())),
		kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit())
	if err != nil {
		return err
	}
	defer cl.Close()
	var n, n0 int64
	var first time.Time
	limit := time.Now().Add(5 * time.Minute)
	for n < total && time.Now().Before(limit) {
		fs := cl.PollRecords(ctx, 10000)
		if ctx.Err() != nil {
			return fmt.Errorf("raw consumer saw %d of %d records: %w", n, total, ctx.Err())
		}
		k := int64(fs.NumRecords())
		n += k
		if k > 0 && first.IsZero() {
			first, n0 = time.Now(), n // the first fetch starts the clock
		}
	}
	if n < total {
		return fmt.Errorf("raw consumer saw %d of %d records", n, total)
	}
	r.res.RawConsume = rate(n-n0, time.Since(first))
	r.progress("raw consume: %d records in %.2fs = %.0f/s", n, r.res.RawConsume.Seconds, r.res.RawConsume.PerSec)
	return nil
}

// rawInsert is the ClickHouse limit: for every table the projector wrote,
// up to RawRows of its rows are read back (untimed) and inserted with
// clickhouse-go into a copy of the table (same DDL), in batches of Batch
// rows, one goroutine per partition as the projector's workers do. Only
// PrepareBatch+Append+Send is timed. The events/s equivalent weighs each
// table by the rows per event the projector wrote into it:
// events/s = 1 / Σ_t (rows_per_event_t / rows_per_sec_t).
func (r *run) rawInsert(ctx context.Context, st childStats) error {
	var events int64
	for _, v := range st.PerProj {
		events += v
	}
	if events == 0 {
		return fmt.Errorf("no applied events")
	}
	var secPerEvent float64
	for _, name := range projections {
		p, err := demoProjection(name, r.prefix)
		if err != nil {
			return err
		}
		tables := store.NewLayout(p, 1).Tables
		for _, pt := range tables {
			rows := st.Rows[name+"/"+pt.Logical]
			if pt.Parked || rows == 0 {
				continue
			}
			// A State table has merged away most versions; its history
			// table holds every row the projector inserted into it.
			src := pt.Name
			for _, h := range tables {
				if pt.State && h.History && h.Logical == pt.Logical+"_history" {
					src = h.Name
				}
			}
			ti, err := r.rawInsertTable(ctx, pt, src)
			if err != nil {
				return err
			}
			ti.RowsPerEv = float64(rows) / float64(events)
			secPerEvent += ti.RowsPerEv / ti.RowsPerSec
			r.res.RawInsert.Tables = append(r.res.RawInsert.Tables, ti)
			r.progress("raw insert %s: %d rows in %.2fs = %.0f rows/s (%.2f rows/event)", pt.Name, ti.Rows, ti.Seconds, ti.RowsPerSec, ti.RowsPerEv)
		}
	}
	if secPerEvent > 0 {
		r.res.RawInsert.EventsPerSec = 1 / secPerEvent
	}
	return nil
}

func (r *run) rawInsertTable(ctx context.Context, pt store.PhysTable, src string) (TableInsert, error) {
	ti := TableInsert{Table: pt.Name}
	copyName := "raw_" + pt.Name
	if err := r.conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s AS %s", copyName, pt.Name)); err != nil {
		return ti, err
	}
	cols := rowColumns(pt)
	list := strings.Join(cols, ", ")
	rows, err := r.readRows(ctx, src, cols, r.cfg.RawRows)
	if err != nil {
		return ti, err
	}
	byPart := map[uint32][][]any{}
	partCol := len(pt.Columns) + 1
	for _, vals := range rows {
		p, _ := vals[partCol].(uint32)
		byPart[p] = append(byPart[p], vals)
	}
	ti.Rows = len(rows)
	stmt := fmt.Sprintf("INSERT INTO %s (%s)", copyName, list)
	var wg sync.WaitGroup
	errs := make(chan error, len(byPart))
	t0 := time.Now()
	for _, part := range byPart {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(part); i += r.cfg.Batch {
				b, err := r.conn.PrepareBatch(ctx, stmt)
				if err != nil {
					errs <- err
					return
				}
				for _, row := range part[i:min(i+r.cfg.Batch, len(part))] {
					if err := b.Append(row...); err != nil {
						b.Abort()
						errs <- err
						return
					}
				}
				if err := b.Send(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return ti, fmt.Errorf("raw insert into %s: %w", copyName, err)
	}
	ti.Seconds = d.Seconds()
	ti.RowsPerSec = float64(ti.Rows) / d.Seconds()
	return ti, nil
}

// rowColumns are the columns of pt's rows as the projector writes them:
// its user columns, then the system columns.
func rowColumns(pt store.PhysTable) []string {
	var cols []string
	for _, c := range append(pt.Columns, store.SystemColumns()...) {
		cols = append(cols, c.Name)
	}
	return cols
}

// readRows reads up to limit rows of cols from table, by partition and
// offset (as the projector wrote them).
func (r *run) readRows(ctx context.Context, table string, cols []string, limit int) ([][]any, error) {
	rows, err := r.conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s ORDER BY _partition, _offset LIMIT %d", strings.Join(cols, ", "), table, limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var types []reflect.Type
	for _, ct := range rows.ColumnTypes() {
		types = append(types, ct.ScanType())
	}
	var out [][]any
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, t := range types {
			ptrs[i] = reflect.New(t).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		vals := make([]any, len(types))
		for i := range vals {
			vals[i] = reflect.ValueOf(ptrs[i]).Elem().Interface()
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}
