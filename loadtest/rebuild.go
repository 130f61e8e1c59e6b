package loadtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reel-dev/reel/projectors/store"
)

// hammerPace is the pause before each query of a loop during the replay.
const hammerPace = 100 * time.Millisecond

// rebuild replays the whole history into generation 2 (a new consumer
// group from the earliest offset, Replay(true), WithoutViews) in a fresh
// projector process while two query loops read the stable views, then
// cuts over as the rebuild job does: store.SwitchViews makes every view a
// union of both generations gated by the served one, then serves
// generation 2 with one insert; the registry records generation 2 live
// and 1 standby. During the replay the loops are paced
// like dashboards (hammerPace per query each): unpaced, their FINAL
// aggregations compete with the replay for the cores it is measured on.
// From a second before the switch to two seconds after they run flat out;
// every failed query counts.
func (r *run) rebuild(ctx context.Context) error {
	total := r.pd.produced.Load()
	hctx, stopHammer := context.WithCancel(ctx)
	defer stopHammer()
	var queries, failed atomic.Int64
	var paced atomic.Bool
	paced.Store(true)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	hammer := []string{
		"SELECT count() FROM orders_current",
		"SELECT status, orders, total_cents FROM orders_by_status ORDER BY status",
		"SELECT conference_id, seat_type, available FROM seats_available ORDER BY conference_id LIMIT 10",
	}
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; hctx.Err() == nil; k++ {
				if paced.Load() {
					select {
					case <-hctx.Done():
						return
					case <-time.After(hammerPace):
					}
				}
				rows, err := r.conn.Query(hctx, hammer[k%len(hammer)])
				if err == nil {
					for rows.Next() {
					}
					err = rows.Err()
					rows.Close()
				}
				if hctx.Err() != nil {
					return
				}
				queries.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}

	r.setPhase("replay g2")
	t0 := time.Now()
	for _, name := range projections {
		p, _ := demoProjection(name, r.prefix)
		if err := store.SetGeneration(ctx, r.conn, p, 2, store.StatusBuilding, "load test rebuild"); err != nil {
			r.note("registry: %v", err)
		}
	}
	if err := r.startChild(ctx, 2, true); err != nil {
		return err
	}
	defer r.stopChild()
	stopProfile := r.startProfile(ctx, "full replay (generation 2)", "replay")
	d, n, err := r.timeToApply(ctx, total, 15*time.Minute, func(t time.Duration, applied int64) {
		r.res.ReplayProg = append(r.res.ReplayProg, Point{T: t.Seconds(), Applied: applied, Fraction: float64(applied) / float64(total)})
	})
	stopProfile()
	if err != nil {
		return err
	}
	r.res.Replay = rate(n, d)
	r.progress("replay: %d events in %.2fs (%.0f/s; %.1fs incl. start-up)", total, r.res.Replay.Seconds, r.res.Replay.PerSec, time.Since(t0).Seconds())
	cpu, _ := readProc(r.child.cmd.Process.Pid)
	r.res.Projector.CPUReplay = cpu.CPU.Seconds() / time.Since(t0).Seconds()

	r.setPhase("cut-over")
	r.res.Cutover.PacedQueries = queries.Load()
	paced.Store(false)
	time.Sleep(time.Second) // hammer running flat out against generation 1
	c0 := time.Now()
	for _, name := range projections {
		p, _ := demoProjection(name, r.prefix)
		// The rebuild job's switch: views become unions gated by the live
		// generation, then one insert serves generation 2.
		if err := store.SwitchViews(ctx, r.conn, store.NewLayout(p, 1), store.NewLayout(p, 2)); err != nil {
			return err
		}
	}
	r.res.Cutover.DurationMs = float64(time.Since(c0).Microseconds()) / 1000
	for _, name := range projections {
		p, _ := demoProjection(name, r.prefix)
		_ = store.SetGeneration(ctx, r.conn, p, 2, store.StatusLive, "load test cut-over")
		_ = store.SetGeneration(ctx, r.conn, p, 1, store.StatusStandby, "load test cut-over")
	}
	time.Sleep(2 * time.Second)
	stopHammer()
	wg.Wait()
	r.res.Cutover.Method = "store.SwitchViews(1 → 2), the rebuild job's switch: every view re-created as the union of both generations gated by the served generation, then one insert serves generation 2 (the time covers both steps, per projection)"
	r.res.Cutover.Queries, r.res.Cutover.Failed = queries.Load(), failed.Load()
	if e, ok := firstErr.Load().(string); ok {
		r.res.Cutover.FirstError = e
	}
	// The views must now read generation 2 and agree with generation 1.
	var g1, g2 uint64
	p, _ := demoProjection("orders", r.prefix)
	_ = r.conn.QueryRow(ctx, "SELECT count() FROM "+store.PhysName("orders", "orders_current", 1)+" FINAL").Scan(&g1)
	_ = r.conn.QueryRow(ctx, "SELECT count() FROM orders_current").Scan(&g2)
	var def string
	_ = r.conn.QueryRow(ctx, "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = 'orders_current'").Scan(&def)
	r.res.Cutover.Verified = fmt.Sprintf("orders_current reads %s: %v; %d orders via the view = %d in generation 1: %v",
		store.PhysName(p.Name, "orders_current", 2), strings.Contains(def, store.PhysName(p.Name, "orders_current", 2)), g2, g1, g1 == g2)
	r.progress("cut-over: %.1f ms, %d queries, %d failed; %s", r.res.Cutover.DurationMs, r.res.Cutover.Queries, r.res.Cutover.Failed, r.res.Cutover.Verified)
	return nil
}
