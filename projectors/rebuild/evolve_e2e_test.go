package rebuild_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/rebuild"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// bookingsAt is a stateless projection of the seat events at one of four
// revisions, the changes teams make every week: 1 the start; 2 + a column
// with a default (seat_type); 3 + a table (booking_cancellations); 4 a logic
// change (Version 2: a cancellation also books a negative line, so
// bookings_per_conference shows net seats).
func bookingsAt(rev int) *projection.Projection {
	cols := []projection.Column{{Name: "conference_id", Type: "String"}, {Name: "reservation_id", Type: "String"}, {Name: "quantity", Type: "Int64"}}
	if rev >= 2 {
		cols = append(cols, projection.Column{Name: "seat_type", Type: "LowCardinality(String)", Default: "'unknown'"})
	}
	p := &projection.Projection{
		Name: "bookings", Version: 1, Topics: []string{seats.Topic},
		Tables: []projection.Table{{Name: "booking_lines", Columns: cols, OrderBy: "conference_id, reservation_id"}},
		Views: []projection.View{{Name: "bookings_per_conference",
			SQL: "SELECT conference_id, sum(quantity) AS seats, count() AS lines FROM {{booking_lines}} GROUP BY conference_id"}},
	}
	if rev >= 3 {
		p.Tables = append(p.Tables, projection.Table{Name: "booking_cancellations", OrderBy: "conference_id, reservation_id",
			Columns: []projection.Column{{Name: "conference_id", Type: "String"}, {Name: "reservation_id", Type: "String"}, {Name: "quantity", Type: "Int64"}}})
	}
	if rev >= 4 {
		p.Version = 2
	}
	line := func(tx projection.Tx, conf, id, st string, q int64) error {
		if rev >= 2 {
			return tx.Emit("booking_lines", conf, id, q, st)
		}
		return tx.Emit("booking_lines", conf, id, q)
	}
	p.Apply = func(ctx context.Context, tx projection.Tx, ev schemas.Event) error {
		switch e := ev.Payload.(type) {
		case *events.SeatsReserved:
			return line(tx, e.ConferenceID, e.ReservationID, e.SeatType, int64(e.Quantity))
		case *events.SeatReservationCancelled:
			if rev >= 3 {
				if err := tx.Emit("booking_cancellations", e.ConferenceID, e.ReservationID, int64(e.Quantity)); err != nil {
					return err
				}
			}
			if rev >= 4 {
				return line(tx, e.ConferenceID, e.ReservationID+"-x", e.SeatType, -int64(e.Quantity))
			}
		}
		return nil
	}
	return p
}

// TestEvolveWhileStreaming: events stream and a query loop reads the views
// while the bookings projection changes three ways — a column (migrated
// into the live generation by the restarted projector), a table (migrated
// and filled from history) and its logic (blue/green rebuild, cut over with
// the change declared). Each change reaches the views with no failed
// query, and at the end the views equal an independent fold of every event.
func TestEvolveWhileStreaming(t *testing.T) {
	e := newEnv(t, 3)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(2000))
	if _, err := store.LiveGeneration(ctx, e.ch.Conn, bookingsAt(1)); err != nil {
		t.Fatal(err)
	}
	start := func(rev, gen int, more ...projectors.Opt) *supRun {
		r, err := projectors.NewRunner(bookingsAt(rev), e.ch.Conn, e.codec, append([]projectors.Opt{projectors.Brokers(e.brokers...), projectors.Generation(gen),
			projectors.FlushInterval(50 * time.Millisecond), projectors.EffectsByGeneration()}, more...)...)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		return &supRun{cancel: cancel, done: done}
	}
	stopRun := func(r *supRun) {
		r.cancel()
		if err := <-r.done; err != nil {
			t.Fatalf("runner: %v", err)
		}
	}
	live := start(1, 1)
	e.waitApplied("bookings", 1, time.Minute)

	// Events keep coming; queries keep reading.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				e.produce(e.w.next(50))
			}
		}
	}()
	var queries, failed atomic.Int64
	extra := atomic.Pointer[string]{}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				qs := []string{"SELECT sum(seats), sum(lines) FROM bookings_per_conference",
					"SELECT count() FROM bookings_per_conference AS a INNER JOIN (SELECT conference_id, count() AS n FROM booking_lines GROUP BY conference_id) AS b USING (conference_id) WHERE a.lines != b.n"}
				if x := extra.Load(); x != nil {
					qs = append(qs, *x)
				}
				for _, q := range qs {
					rows, err := e.ch.Conn.Query(ctx, q)
					if err == nil {
						for rows.Next() {
						}
						err = rows.Err()
						rows.Close()
					}
					queries.Add(1)
					if err != nil {
						failed.Add(1)
						t.Logf("query failed: %v", err)
					}
				}
			}
		}()
	}
	until := func(what string, d time.Duration, ok func() bool) time.Duration {
		t0 := time.Now()
		for !ok() {
			if time.Since(t0) > d {
				t.Fatalf("%s: not within %s", what, d)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(t0)
	}
	count := func(q string) int64 {
		var n uint64
		if err := e.ch.Conn.QueryRow(ctx, q).Scan(&n); err != nil {
			return -1
		}
		return int64(n)
	}
	var notes []string
	note := func(s string) {
		notes = append(notes, fmt.Sprintf("%s (queries so far %d, failed %d)", s, queries.Load(), failed.Load()))
	}

	// 1. A column: the projector is restarted with the new code.
	t0 := time.Now()
	stopRun(live)
	live = start(2, 1)
	d := until("seat_type in the view with real values", time.Minute, func() bool {
		return count("SELECT count() FROM booking_lines WHERE seat_type IN ('general', 'vip')") > 0
	})
	s := "SELECT seat_type, count() FROM booking_lines GROUP BY seat_type"
	extra.Store(&s)
	note(fmt.Sprintf("add column: %s to the views (restart %s)", d, time.Since(t0)-d))

	// 2. A table, filled from history.
	t0 = time.Now()
	stopRun(live)
	live = start(3, 1)
	d = until("booking_cancellations filled from history", time.Minute, func() bool {
		want := int64(0)
		e.w.mu.Lock()
		for _, ev := range e.w.events[:len(e.w.events)-200] { // all but the newest
			if _, ok := ev.Payload.(*events.SeatReservationCancelled); ok {
				want++
			}
		}
		e.w.mu.Unlock()
		return count("SELECT count() FROM booking_cancellations") >= want
	})
	s2 := "SELECT conference_id, count() FROM booking_cancellations GROUP BY conference_id"
	extra.Store(&s2)
	note(fmt.Sprintf("add table: %s to the views with its history", time.Since(t0)))

	// 3. Logic: v3 keeps serving while the rebuild replays v4 beside it.
	t0 = time.Now()
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, bookingsAt(4), rebuild.Brokers(e.brokers...), rebuild.Handover(0), rebuild.MaxLag(100),
		rebuild.ExpectChanges("booking_lines"), rebuild.RunnerOpts(projectors.FlushInterval(50*time.Millisecond)))
	if err != nil || !res.CutOver {
		t.Fatalf("rebuild into the logic change: %+v %v", res, err)
	}
	note(fmt.Sprintf("change logic: %s to the views (rebuild replayed %d offsets, switch %s)", time.Since(t0), res.Replayed, res.ViewSwitch))
	for _, c := range res.Comparison.Tables {
		t.Logf("report: %s", c.String())
	}
	stopRun(live) // `reel project` follows the registry: g2 live, g1 standby
	live = start(4, 2)
	standby := start(3, 1, projectors.WithoutViews()) // as the supervisor runs a standby

	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	e.waitApplied("bookings", 2, time.Minute)
	e.waitApplied("bookings", 1, time.Minute)

	// The views against a fold of every event under v4.
	seatsPer, lines, canc := map[string]int64{}, map[string]int64{}, int64(0)
	for _, ev := range e.w.events {
		switch x := ev.Payload.(type) {
		case *events.SeatsReserved:
			seatsPer[x.ConferenceID] += int64(x.Quantity)
			lines[x.ConferenceID]++
		case *events.SeatReservationCancelled:
			seatsPer[x.ConferenceID] -= int64(x.Quantity)
			lines[x.ConferenceID]++
			canc++
		}
	}
	rows, err := e.ch.Conn.Query(ctx, "SELECT conference_id, seats, lines FROM bookings_per_conference")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var c string
		var s int64
		var l uint64
		if err := rows.Scan(&c, &s, &l); err != nil {
			t.Fatal(err)
		}
		n++
		if s != seatsPer[c] || int64(l) != lines[c] {
			t.Fatalf("bookings_per_conference %s: %d seats, %d lines; fold %d, %d", c, s, l, seatsPer[c], lines[c])
		}
	}
	rows.Close()
	if n != len(seatsPer) {
		t.Fatalf("%d conferences in the view, %d in the fold", n, len(seatsPer))
	}
	if got := count("SELECT count() FROM booking_cancellations"); got != canc {
		t.Fatalf("booking_cancellations %d, fold %d", got, canc)
	}
	if unknown := count("SELECT count() FROM booking_lines WHERE seat_type = 'unknown'"); unknown != 0 {
		t.Fatalf("%d lines without a seat type after the rebuild", unknown)
	}
	stopRun(live)
	stopRun(standby)
	if failed.Load() != 0 {
		t.Fatalf("%d of %d queries failed", failed.Load(), queries.Load())
	}
	for _, s := range notes {
		t.Log(s)
	}
	t.Logf("%d events; %d queries, 0 failed; views equal the fold", len(e.w.events), queries.Load())
}
