package rebuild_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/reel-dev/reel/examples/demo/projectors/eventlog"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/rebuild"
	"github.com/reel-dev/reel/projectors/store"
)

// TestTimeBoundedRebuildsAndGC: a rebuild from a time replays only the
// records at or after it; one from explicit offsets starts each listed
// partition there and the others at the beginning; a projection with a
// State table is refused a start after the beginning; then gc drops the
// two replaced generations (tables, inboxes, guards, system rows, consumer
// groups) and leaves the live one serving.
func TestTimeBoundedRebuildsAndGC(t *testing.T) {
	e := newEnv(t, 3)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(1500))
	before := map[int32]int64{}
	for p, o := range e.w.last {
		before[p] = o
	}
	time.Sleep(200 * time.Millisecond)
	cut := time.Now()
	time.Sleep(200 * time.Millisecond)
	e.produce(e.w.next(1500))
	total := int64(0)
	for _, o := range e.w.last {
		total += o + 1
	}

	// A State projection: refused, nothing built.
	_, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seats.Availability(), rebuild.Brokers(e.brokers...),
		rebuild.StartFrom(rebuild.From{Kind: rebuild.FromTimestamp, Time: cut}))
	if !errors.Is(err, rebuild.ErrPartialState) || !strings.Contains(err.Error(), "seat_availability") || !strings.Contains(err.Error(), "-partial-state") {
		t.Fatalf("from-time rebuild of seats: want ErrPartialState naming the table and the flag, got %v", err)
	}

	// event_log (no state): g1 live with everything.
	p := eventlog.Log(seats.Topic)
	if _, err := store.LiveGeneration(ctx, e.ch.Conn, p); err != nil {
		t.Fatal(err)
	}
	r := e.startRunner(p, 1, projectors.WithoutViews())
	e.waitApplied(p.Name, 1, time.Minute)
	r.cancel()
	<-r.done
	if err := store.CreateViews(ctx, e.ch.Conn, store.NewLayout(p, 1)); err != nil {
		t.Fatal(err)
	}
	opts := []rebuild.Opt{rebuild.Brokers(e.brokers...), rebuild.Handover(0), rebuild.MaxLag(0), rebuild.ExpectChanges("event_log")}

	// From the time: exactly the records after it.
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, p, append(opts, rebuild.StartFrom(rebuild.From{Kind: rebuild.FromTimestamp, Time: cut}))...)
	if err != nil || !res.CutOver || res.Generation != 2 {
		t.Fatalf("from-time rebuild: %+v %v", res, err)
	}
	minOff := perPartition(t, e, "SELECT _partition, min(_offset), count() FROM event_log GROUP BY _partition")
	for part, last := range e.w.last {
		want := [2]int64{before[part] + 1, last - before[part]}
		if minOff[part] != want {
			t.Fatalf("from %s, partition %d: first offset and rows %v, want %v (records after the time only)", cut.Format(time.RFC3339Nano), part, minOff[part], want)
		}
	}

	// From explicit offsets: partition 0 at 100, the others at the beginning.
	res, err = rebuild.Run(ctx, e.ch.Conn, e.codec, p, append(opts, rebuild.StartFrom(rebuild.From{Kind: rebuild.FromOffsets,
		Offsets: map[string]map[int32]int64{seats.Topic: {0: 100}}}))...)
	if err != nil || !res.CutOver || res.Generation != 3 {
		t.Fatalf("from-offsets rebuild: %+v %v", res, err)
	}
	got := perPartition(t, e, "SELECT _partition, min(_offset), count() FROM event_log GROUP BY _partition")
	for part, last := range e.w.last {
		want := [2]int64{0, last + 1}
		if part == 0 {
			want = [2]int64{100, last - 99}
		}
		if got[part] != want {
			t.Fatalf("from offsets, partition %d: first offset and rows %v, want %v", part, got[part], want)
		}
	}

	// gc: a dry run changes nothing; then g1 and g2 (standby) go.
	later := time.Now().Add(49 * time.Hour)
	acts, err := rebuild.GC(ctx, e.ch.Conn, kadm.NewClient(e.prod), p, rebuild.GCOptions{DryRun: true, Now: later})
	if err != nil || len(acts) != 2 || acts[0].Action != "would drop" || countTables(t, e, "event_log__%__g1%") == 0 {
		t.Fatalf("gc dry run: %+v %v", acts, err)
	}
	acts, err = rebuild.GC(ctx, e.ch.Conn, kadm.NewClient(e.prod), p, rebuild.GCOptions{Now: later, Wait: 5 * time.Second})
	if err != nil || len(acts) != 2 || acts[0].Action != "dropped" || acts[1].Action != "dropped" {
		t.Fatalf("gc: %+v %v", acts, err)
	}
	for _, g := range []string{"1", "2"} {
		if n := countTables(t, e, "event_log__%__g"+g+"%"); n != 0 {
			t.Fatalf("gc left %d tables (tables, inboxes, guards) of g%s", n, g)
		}
		var rows uint64
		must(t, e.ch.Conn.QueryRow(ctx, "SELECT (SELECT count() FROM _reel_checkpoints WHERE proj = 'event_log' AND generation = "+g+
			") + (SELECT count() FROM _reel_definitions WHERE proj = 'event_log' AND generation = "+g+
			") + (SELECT count() FROM _reel_owners WHERE proj = 'event_log' AND generation = "+g+")").Scan(&rows))
		if rows != 0 {
			t.Fatalf("gc left %d system rows of g%s", rows, g)
		}
	}
	groups, err := kadm.NewClient(e.prod).ListGroups(ctx)
	must(t, err)
	for _, g := range groups.Groups() {
		if g == "reel.event_log.g1" || g == "reel.event_log.g2" {
			t.Fatalf("gc left consumer group %s", g)
		}
	}
	gens, _ := store.Generations(ctx, e.ch.Conn, p.Name)
	if st := statuses(gens); st[1] != store.StatusDropped || st[2] != store.StatusDropped || st[3] != store.StatusLive {
		t.Fatalf("generations after gc: %v (gc: %+v, rows %+v)", st, acts, gens)
	}
	if after := perPartition(t, e, "SELECT _partition, min(_offset), count() FROM event_log GROUP BY _partition"); after[0] != got[0] {
		t.Fatalf("the live generation's view after gc: %v, before %v", after, got)
	}
	t.Logf("from %s: %v; from offsets: %v; gc dropped g1, g2; %d offsets in all", cut.Format(time.RFC3339Nano), minOff, got, total)
}

func perPartition(t *testing.T, e *env, q string) map[int32][2]int64 {
	t.Helper()
	rows, err := e.ch.Conn.Query(context.Background(), q)
	must(t, err)
	defer rows.Close()
	out := map[int32][2]int64{}
	for rows.Next() {
		var p uint32
		var o, n uint64
		must(t, rows.Scan(&p, &o, &n))
		out[int32(p)] = [2]int64{int64(o), int64(n)}
	}
	return out
}

func countTables(t *testing.T, e *env, like string) uint64 {
	t.Helper()
	var n uint64
	must(t, e.ch.Conn.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE ?", like).Scan(&n))
	return n
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
