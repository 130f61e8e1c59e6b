package projectors_test

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// bookings is a small stateless projection of the seat events whose
// definition the tests change the way teams do: v1 has one table; "col"
// adds a column with a default; "table" adds a table; "retype" changes a
// column's type. effects counts its side effects per reservation ID.
func bookings(change string, effects *sync.Map) *projection.Projection {
	cols := []projection.Column{{Name: "conference_id", Type: "String"}, {Name: "reservation_id", Type: "String"}, {Name: "quantity", Type: "Int64"}}
	if change == "col" || change == "table" {
		cols = append(cols, projection.Column{Name: "seat_type", Type: "LowCardinality(String)", Default: "'unknown'"})
	}
	if change == "retype" {
		cols[2].Type = "Int32"
	}
	p := &projection.Projection{
		Name: "bookings", Version: 1, Topics: []string{seats.Topic},
		Tables: []projection.Table{{Name: "booking_lines", Columns: cols, OrderBy: "conference_id, reservation_id"}},
		Views: []projection.View{{Name: "bookings_per_conference",
			SQL: "SELECT conference_id, sum(quantity) AS seats, count() AS lines FROM {{booking_lines}} GROUP BY conference_id"}},
	}
	if change == "table" {
		p.Tables = append(p.Tables, projection.Table{Name: "booking_cancellations", OrderBy: "conference_id, reservation_id",
			Columns: []projection.Column{{Name: "conference_id", Type: "String"}, {Name: "reservation_id", Type: "String"}, {Name: "quantity", Type: "Int64"}}})
	}
	p.Apply = func(ctx context.Context, tx projection.Tx, ev schemas.Event) error {
		switch e := ev.Payload.(type) {
		case *events.SeatsReserved:
			if effects != nil {
				id := e.ReservationID
				tx.SideEffect(func(context.Context) error {
					n, _ := effects.LoadOrStore(id, new(int))
					*n.(*int)++
					return nil
				})
			}
			vals := []any{e.ConferenceID, e.ReservationID, int64(e.Quantity)}
			if change == "retype" {
				vals[2] = int32(e.Quantity)
			}
			if len(cols) == 4 {
				vals = append(vals, e.SeatType)
			}
			return tx.Emit("booking_lines", vals...)
		case *events.SeatReservationCancelled:
			if change == "table" {
				return tx.Emit("booking_cancellations", e.ConferenceID, e.ReservationID, int64(e.Quantity))
			}
		}
		return nil
	}
	return p
}

type running struct {
	cancel context.CancelFunc
	done   chan error
}

func startRunner(t *testing.T, ch testenv.CH, brokers []string, p *projection.Projection, opts ...projectors.Opt) *running {
	t.Helper()
	r, err := projectors.NewRunner(p, ch.Conn, newCodec(t), append([]projectors.Opt{projectors.Brokers(brokers...), projectors.Generation(1),
		projectors.FlushInterval(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { rr.done <- r.Run(ctx) }()
	return rr
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("runner: %v", err)
	}
}

// eventually polls check until it returns "" or the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, done <-chan error, check func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := check()
		if msg == "" {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("%s: the runner stopped: %v (last check: %s)", what, err, msg)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, d, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAdditiveChangesMigrateLiveGeneration: a running generation follows
// its projection's additive changes without a rebuild. Adding a column
// with a default is an ALTER on the table and its inbox (the guard view
// re-expands SELECT * EXCEPT (_epoch) on the next insert: verified by the
// new column's values arriving through it); adding a table creates it with
// its inbox and guard and fills it from history — the runner resumes from
// the lowest table position, the other tables drop the rows they hold and
// no side effect runs twice. Each revision is recorded. Before this change
// the column addition failed every insert and the runner restarted
// forever (the first step's error).
func TestAdditiveChangesMigrateLiveGeneration(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	createTopic(t, brokers, seats.Topic, 3)
	rng := rand.New(rand.NewSource(14))
	evs1 := seatEvents(rng, 4, 400)
	produce(t, brokers, evs1)
	var effects sync.Map
	if _, err := store.LiveGeneration(ctx, ch.Conn, bookings("", nil)); err != nil {
		t.Fatal(err)
	}

	r := startRunner(t, ch, brokers, bookings("", &effects))
	all := evs1
	eventually(t, "v1 projected", time.Minute, r.done, func() string { return checkBookings(ctx, t, ch, all, false, false) })
	r.stop(t)

	// v1 + a column with a default.
	evs2 := relabel(seatEvents(rng, 4, 300)[12:], "b") // no second ConferenceCreated/SeatsAdded
	produce(t, brokers, evs2)
	all = append(append([]schemas.Event(nil), evs1...), evs2...)
	plan := planText(ctx, t, ch, bookings("col", nil), false)
	for _, want := range []string{"additive               add column booking_lines.seat_type: LowCardinality(String) DEFAULT 'unknown'",
		"ALTER TABLE bookings__booking_lines__g1 ADD COLUMN IF NOT EXISTS seat_type LowCardinality(String) DEFAULT 'unknown'",
		"ALTER TABLE bookings__booking_lines__g1__in ADD COLUMN IF NOT EXISTS seat_type"} {
		if !strings.Contains(plan, want) {
			t.Fatalf("plan lacks %q:\n%s", want, plan)
		}
	}
	var cols uint64
	must(t, ch.Conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND name = 'seat_type'").Scan(&cols))
	if cols != 0 {
		t.Fatalf("reel plan changed the tables: %d seat_type columns", cols)
	}
	r = startRunner(t, ch, brokers, bookings("col", &effects))
	eventually(t, "column added", time.Minute, r.done, func() string {
		return checkBookings(ctx, t, ch, all, true, false) + checkSeatTypes(ctx, t, ch, evs1, evs2)
	})
	r.stop(t)

	// + a table, filled from history while new events keep arriving.
	r = startRunner(t, ch, brokers, bookings("table", &effects))
	evs3 := relabel(seatEvents(rng, 4, 300)[12:], "c")
	produce(t, brokers, evs3)
	all = append(all, evs3...)
	eventually(t, "table added and filled from history", time.Minute, r.done, func() string {
		return checkBookings(ctx, t, ch, all, true, true)
	})
	r.stop(t)

	// Side effects: once per reservation across the three definitions.
	n := 0
	for _, ev := range all {
		if e, ok := ev.Payload.(*events.SeatsReserved); ok {
			n++
			v, ok := effects.Load(e.ReservationID)
			if !ok || *v.(*int) != 1 {
				got := 0
				if ok {
					got = *v.(*int)
				}
				t.Fatalf("side effect of %s ran %d times, want 1", e.ReservationID, got)
			}
		}
	}

	// Recorded revisions: created, the column, the table.
	var revs uint64
	var last string
	must(t, ch.Conn.QueryRow(ctx, "SELECT count(), argMax(changes, revision) FROM _reel_definitions WHERE proj = 'bookings' AND generation = 1").Scan(&revs, &last))
	if revs != 3 || !strings.Contains(last, "add table booking_cancellations") {
		t.Fatalf("recorded %d revisions, last %q; want 3, the last adding booking_cancellations", revs, last)
	}

	// A retyped column is refused, naming the change and the command.
	plan = planText(ctx, t, ch, bookings("retype", nil), true)
	if !strings.Contains(plan, "NEEDS A NEW GENERATION retype column booking_lines.quantity: Int64 → Int32") || !strings.Contains(plan, "`reel rebuild bookings`") {
		t.Fatalf("plan of the retype:\n%s", plan)
	}
	r = startRunner(t, ch, brokers, bookings("retype", nil))
	err := <-r.done
	r.cancel()
	var de *store.DefinitionError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "retype column booking_lines.quantity: Int64 → Int32") ||
		!strings.Contains(err.Error(), "reel rebuild bookings") || !strings.Contains(err.Error(), "drop table booking_cancellations") {
		t.Fatalf("retype: want a DefinitionError naming the change and `reel rebuild bookings`, got %v", err)
	}
	t.Logf("%d events, %d side effects each run once; refused: %v", len(all), n, err)
}

// checkBookings compares the bookings views and tables with a fold of evs.
func checkBookings(ctx context.Context, t *testing.T, ch testenv.CH, evs []schemas.Event, seatType, cancellations bool) string {
	seatsPer, lines := map[string]int64{}, map[string]uint64{}
	canc := uint64(0)
	for _, ev := range evs {
		switch e := ev.Payload.(type) {
		case *events.SeatsReserved:
			seatsPer[e.ConferenceID] += int64(e.Quantity)
			lines[e.ConferenceID]++
		case *events.SeatReservationCancelled:
			canc++
		}
	}
	rows, err := ch.Conn.Query(ctx, "SELECT conference_id, seats, lines FROM bookings_per_conference")
	if err != nil {
		return err.Error()
	}
	got := 0
	for rows.Next() {
		var c string
		var s int64
		var l uint64
		if err := rows.Scan(&c, &s, &l); err != nil {
			rows.Close()
			return err.Error()
		}
		got++
		if s != seatsPer[c] || l != lines[c] {
			rows.Close()
			return "bookings_per_conference " + c + " differs from the fold"
		}
	}
	rows.Close()
	if got != len(seatsPer) {
		return "bookings_per_conference has the wrong conferences"
	}
	if cancellations {
		var n uint64
		if err := ch.Conn.QueryRow(ctx, "SELECT count() FROM booking_cancellations").Scan(&n); err != nil {
			return err.Error()
		}
		if n != canc {
			return "booking_cancellations rows differ from the fold"
		}
	}
	_ = seatType
	return ""
}

// checkSeatTypes: rows written before the column existed show its default,
// rows after it the event's seat type.
func checkSeatTypes(ctx context.Context, t *testing.T, ch testenv.CH, before, after []schemas.Event) string {
	want := map[string]string{}
	for _, ev := range before {
		if e, ok := ev.Payload.(*events.SeatsReserved); ok {
			want[e.ReservationID] = "unknown"
		}
	}
	for _, ev := range after {
		if e, ok := ev.Payload.(*events.SeatsReserved); ok {
			want[e.ReservationID] = e.SeatType
		}
	}
	rows, err := ch.Conn.Query(ctx, "SELECT reservation_id, seat_type FROM booking_lines")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			return err.Error()
		}
		n++
		if want[id] != st {
			return "booking_lines " + id + " seat_type " + st + ", want " + want[id]
		}
	}
	if n != len(want) {
		return "booking_lines row count differs"
	}
	return ""
}

// relabel gives a later batch of seatEvents its own reservation IDs.
func relabel(evs []schemas.Event, prefix string) []schemas.Event {
	for _, ev := range evs {
		switch e := ev.Payload.(type) {
		case *events.SeatsReserved:
			e.ReservationID = prefix + e.ReservationID
		case *events.SeatReservationCancelled:
			e.ReservationID = prefix + e.ReservationID
		}
	}
	return evs
}

func planText(ctx context.Context, t *testing.T, ch testenv.CH, p *projection.Projection, rebuild bool) string {
	t.Helper()
	pl, err := store.PlanChanges(ctx, ch.Conn, p)
	must(t, err)
	var b strings.Builder
	pl.Write(&b)
	if pl.Rebuild() != rebuild {
		t.Fatalf("plan says rebuild=%v, want %v:\n%s", pl.Rebuild(), rebuild, b.String())
	}
	t.Logf("reel plan %s:\n%s", p.Name, b.String())
	return b.String()
}

// TestAddedColumnStallsWithoutMigration shows the failure Evolve exists for,
// with what a runner did before it: EnsureSchema for the new definition over
// a generation created by the old one changes nothing (CREATE … IF NOT
// EXISTS), so the view re-creation and every insert carrying the new column
// fail — the runner stopped at start and the supervisor restarted it with
// backoff forever.
func TestAddedColumnStallsWithoutMigration(t *testing.T) {
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	must(t, store.EnsureSchema(ctx, ch.Conn, store.NewLayout(bookings("", nil), 1)))
	l2 := store.NewLayout(bookings("col", nil), 1)
	must(t, store.EnsureSchema(ctx, ch.Conn, l2))
	err := store.CreateViews(ctx, ch.Conn, l2)
	if err == nil || !strings.Contains(err.Error(), "seat_type") {
		t.Fatalf("views over the old tables with the new column: want an error naming seat_type, got %v", err)
	}
	err = ch.Conn.Exec(ctx, "INSERT INTO bookings__booking_lines__g1__in (conference_id, reservation_id, quantity, seat_type, _topic, _partition, _offset, _event_ts, _epoch) VALUES ('c', 'r', 1, 'vip', 't', 0, 0, now(), 0)")
	if err == nil || !strings.Contains(err.Error(), "seat_type") {
		t.Fatalf("insert with the new column into the old inbox: want an error naming seat_type, got %v", err)
	}
	// Evolve is the way out.
	m, err := store.Evolve(ctx, ch.Conn, l2, true)
	if err != nil || !m.Adopted || len(m.Changes) != 1 || m.Changes[0].Kind != store.AddColumn {
		t.Fatalf("Evolve over the adopted generation: %+v %v", m, err)
	}
	must(t, ch.Conn.Exec(ctx, "INSERT INTO bookings__booking_lines__g1__in (conference_id, reservation_id, quantity, seat_type, _topic, _partition, _offset, _event_ts, _epoch) VALUES ('c', 'r', 1, 'vip', 't', 0, 0, now(), 0)"))
}
