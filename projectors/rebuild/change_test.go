package rebuild_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/rebuild"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// seatsV2 is the seats projection after a change that needs a new
// generation: its logic ignores cancellations (version 2) and it has a new
// table, reservation_log, which on a projection with a State table can only
// be filled by a replay.
func seatsV2() *projection.Projection {
	p := seats.Availability()
	p.Version = 2
	p.Tables = append(p.Tables, projection.Table{Name: "reservation_log", OrderBy: "conference_id, reservation_id",
		Columns: []projection.Column{{Name: "conference_id", Type: "String"}, {Name: "reservation_id", Type: "String"}, {Name: "quantity", Type: "Int64"}}})
	inner := p.Apply
	p.Apply = func(ctx context.Context, tx projection.Tx, ev schemas.Event) error {
		switch e := ev.Payload.(type) {
		case *events.SeatReservationCancelled:
			return nil
		case *events.SeatsReserved:
			if err := tx.Emit("reservation_log", e.ConferenceID, e.ReservationID, int64(e.Quantity)); err != nil {
				return err
			}
		}
		return inner(ctx, tx, ev)
	}
	return p
}

// foldV2 is the v2 answer, computed from the events: seats reserved per
// conference without cancellations, and the reservations.
func foldV2(evs []schemas.Event) (reserved map[string]int64, lines int) {
	reserved = map[string]int64{}
	for _, ev := range evs {
		if e, ok := ev.Payload.(*events.SeatsReserved); ok {
			reserved[e.ConferenceID] += int64(e.Quantity)
			lines++
		}
	}
	return reserved, lines
}

func (e *env) assertV2(ctx context.Context, what string) {
	e.t.Helper()
	want, lines := foldV2(e.w.events)
	got, err := e.viewAnswer(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for id, v := range want {
		if got[id][0] != v {
			e.t.Fatalf("%s: %s reserved %d in the view, %d in the v2 fold", what, id, got[id][0], v)
		}
	}
	var n uint64
	if err := e.ch.Conn.QueryRow(ctx, "SELECT count() FROM reservation_log").Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
	if int(n) != lines {
		e.t.Fatalf("%s: reservation_log has %d rows, the fold %d", what, n, lines)
	}
}

// TestRebuildAfterChange: after a logic change and a new table, the live
// generation is refused; a blue/green rebuild replays into the new
// definition, its comparison reports per table rows only old / only new /
// changed with samples (no error on the table the old generation lacks)
// and stops until the change is declared; then it cuts over and the views
// equal the v2 fold. A snapshot start refuses the change; an in-place
// rebuild re-creates the tables with it.
func TestRebuildAfterChange(t *testing.T) {
	e := newEnv(t, 3)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(4000))
	e.liveG1(ctx)
	v1 := seats.Availability()

	m, err := store.PlanMigration(ctx, e.ch.Conn, store.NewLayout(seatsV2(), 1), true)
	if err != nil {
		t.Fatal(err)
	}
	var de *store.DefinitionError
	if !errors.As(m.Err(), &de) || !strings.Contains(de.Error(), "change logic seats: version 1 → version 2") ||
		!strings.Contains(de.Error(), "add table (needs state) reservation_log") {
		t.Fatalf("the live generation under v2: want a DefinitionError naming the logic change and the table, got %v", m.Err())
	}

	// Snapshot: refused before anything is created.
	_, err = rebuild.Run(ctx, e.ch.Conn, e.codec, seatsV2(), rebuild.Brokers(e.brokers...), rebuild.WithSnapshot(), rebuild.Handover(0), rebuild.MaxLag(0))
	if !errors.Is(err, rebuild.ErrSnapshotDefinition) || !strings.Contains(err.Error(), "change logic") || !strings.Contains(err.Error(), "without -snapshot") {
		t.Fatalf("snapshot of a logic change: want ErrSnapshotDefinition, got %v", err)
	}
	if gens, _ := store.Generations(ctx, e.ch.Conn, v1.Name); len(gens) != 1 {
		t.Fatalf("a refused snapshot registered generations: %v", statuses(gens))
	}

	// Blue/green: the comparison is a report, and stops the cut-over.
	opts := []rebuild.Opt{rebuild.Brokers(e.brokers...), rebuild.Handover(0), rebuild.MaxLag(0)}
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seatsV2(), opts...)
	if !errors.Is(err, rebuild.ErrDifferent) || res.Comparison == nil || !strings.Contains(err.Error(), "-expect-changes") {
		t.Fatalf("rebuild into v2: want ErrDifferent with a report, got %v", err)
	}
	var changed []string
	for _, d := range res.Comparison.Tables {
		t.Logf("report: %s", d)
		switch {
		case d.Table == "reservation_log":
			if !d.OnlyB {
				t.Fatalf("reservation_log: want 'only in the new definition', got %s", d)
			}
		case d.Table == "seat_availability":
			// Conferences with a cancellation differ, others do not.
			if d.Changed == 0 || d.OnlyOld != 0 || d.OnlyNew != 0 || len(d.Samples) == 0 || !strings.HasPrefix(d.Samples[0], "changed  conf-") {
				t.Fatalf("seat_availability: want changed aggregates with samples, got %s", d)
			}
		}
		if !d.Equal() && !d.OnlyB && !d.OnlyA {
			changed = append(changed, d.Table)
		}
	}
	if live := e.viewGeneration(ctx, "seats_reserved_per_conference"); live != 1 {
		t.Fatalf("views moved to g%d before the change was accepted", live)
	}

	// Declared: the same generation resumes, compares, cuts over.
	res, err = rebuild.Run(ctx, e.ch.Conn, e.codec, seatsV2(), append(opts, rebuild.ExpectChanges(changed...))...)
	if err != nil || !res.CutOver || res.Generation != 2 || !res.Resumed {
		t.Fatalf("rebuild with the change declared (%v): %+v, %v", changed, res, err)
	}
	if g := e.viewGeneration(ctx, "seats_reserved_per_conference"); g != 2 {
		t.Fatalf("views at g%d after the cut-over", g)
	}
	e.assertV2(ctx, "blue/green into v2")

	// g1 (standby) keeps v1's definition: v2's code refuses to roll back to it.
	if _, err := rebuild.Rollback(ctx, e.ch.Conn, seatsV2(), 0, false); !errors.Is(err, store.ErrDefinitionChanged) || !strings.Contains(err.Error(), "cannot roll seats back to g1") {
		t.Fatalf("rollback to g1 (v1's definition) under v2's code: want a refusal, got %v", err)
	}
}

// TestInPlaceAfterChange: an in-place rebuild drops the live generation's
// tables, inboxes and guard views and re-creates them with the changed
// definition, records it, and replays: the views equal the v2 fold and the
// generation then runs under v2 without a migration.
func TestInPlaceAfterChange(t *testing.T) {
	e := newEnv(t, 3)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(3000))
	e.liveG1(ctx)
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seatsV2(), rebuild.Brokers(e.brokers...), rebuild.InPlace(), rebuild.MaxLag(0))
	if err != nil || res.Generation != 1 {
		t.Fatalf("in-place into v2: %+v, %v", res, err)
	}
	e.waitApplied("seats", 1, time.Minute)
	e.assertV2(ctx, "in-place into v2")
	m, err := store.PlanMigration(ctx, e.ch.Conn, store.NewLayout(seatsV2(), 1), true)
	if err != nil || len(m.Changes) != 0 || m.Revision != 2 {
		t.Fatalf("after in-place, g1's stored definition: revision %d, changes %v, %v; want revision 2 and none", m.Revision, m.Changes, err)
	}
	var guards uint64
	if err := e.ch.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name IN ('seats__reservation_log__g1__in', 'seats__reservation_log__g1__fence')").Scan(&guards); err != nil || guards != 2 {
		t.Fatalf("reservation_log's inbox and guard: %d of 2 (%v)", guards, err)
	}
}
