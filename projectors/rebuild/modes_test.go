package rebuild_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/rebuild"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// liveG1 registers g1, points the views at it and projects the history
// produced so far into it, then stops its runner.
func (e *env) liveG1(ctx context.Context) {
	e.t.Helper()
	p := seats.Availability()
	if _, err := store.LiveGeneration(ctx, e.ch.Conn, p); err != nil {
		e.t.Fatal(err)
	}
	l1 := store.NewLayout(p, 1)
	if err := store.EnsureSchema(ctx, e.ch.Conn, l1); err != nil {
		e.t.Fatal(err)
	}
	if err := store.CreateViews(ctx, e.ch.Conn, l1); err != nil {
		e.t.Fatal(err)
	}
	r := e.startRunner(p, 1)
	e.waitApplied(p.Name, 1, 2*time.Minute)
	r.cancel()
	<-r.done
}

// TestRebuildResumes cancels a rebuild mid-replay and starts it again: the
// same generation continues from its ClickHouse positions (it does not
// replay what it had) and the result equals the fold.
func TestRebuildResumes(t *testing.T) {
	e := newEnv(t, 4)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(30000))
	e.liveG1(ctx)
	p := seats.Availability()

	rctx, cancel := context.WithCancel(ctx)
	go func() {
		// Cancel once the new generation holds some, not all, of the history.
		for rctx.Err() == nil {
			pos, err := store.AppliedPositions(ctx, e.ch.Conn, store.NewLayout(p, 2))
			var n int64
			for _, parts := range pos {
				for _, o := range parts {
					n += o + 1
				}
			}
			if err == nil && n > 3000 {
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	// Small fetches: a canceled runner flushes what it has fetched, and
	// this test needs it stopped half-way.
	opts := []rebuild.Opt{rebuild.Brokers(e.brokers...), rebuild.BatchEvents(200), rebuild.Handover(0),
		rebuild.ProgressInterval(100 * time.Millisecond), rebuild.MaxLag(0),
		rebuild.RunnerOpts(projectors.FlushInterval(50*time.Millisecond),
			projectors.KafkaOpts(kgo.FetchMaxPartitionBytes(8<<10), kgo.FetchMaxBytes(32<<10)))}
	res1, err := rebuild.Run(rctx, e.ch.Conn, e.codec, seats.Availability(), opts...)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: want canceled, got %v (%+v)", err, res1)
	}
	sts, _ := store.RebuildStatuses(ctx, e.ch.Conn, p.Name)
	if len(sts) == 0 || sts[0].State != rebuild.StateCanceled || sts[0].Generation != 2 {
		t.Fatalf("status after cancel: %+v", sts)
	}
	before, _ := store.AppliedPositions(ctx, e.ch.Conn, store.NewLayout(p, 2))
	var had int64
	for _, parts := range before {
		for _, o := range parts {
			had += o + 1
		}
	}
	if had > int64(len(e.w.events))-1000 {
		t.Fatalf("the first run was not stopped mid-way: it holds %d of %d offsets", had, len(e.w.events))
	}

	res2, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seats.Availability(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Resumed || res2.Generation != 2 || !res2.CutOver {
		t.Fatalf("second run: %+v", res2)
	}
	total := int64(len(e.w.events))
	if res2.Replayed >= total-had/2 {
		t.Fatalf("second run replayed %d offsets of %d: it started over instead of resuming from %v", res2.Replayed, total, before)
	}
	gens, _ := store.Generations(ctx, e.ch.Conn, p.Name)
	if st := statuses(gens); len(st) != 2 || st[2] != store.StatusLive {
		t.Fatalf("generations %v: want g1 standby, g2 live and no g3", st)
	}
	e.assertFold(ctx, "resumed rebuild")
	t.Logf("first run stopped at %v; second run resumed g2 and replayed %d of %d offsets", before, res2.Replayed, total)
}

// TestSnapshotEqualsFullReplay builds g2 from a snapshot of g1 (taken while
// g1 keeps projecting new events) plus the tail, then g3 by a full replay,
// and checks g2 = g3 table by table (count + checksum of every row at the
// same positions) and both = the fold.
func TestSnapshotEqualsFullReplay(t *testing.T) {
	e := newEnv(t, 4)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(20000))
	e.liveG1(ctx)
	p := seats.Availability()
	g1 := e.startRunner(p, 1) // g1 keeps projecting while the snapshot is taken
	t.Cleanup(func() { g1.cancel(); <-g1.done })
	pctx, stopProd := context.WithCancel(ctx)
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for pctx.Err() == nil {
			e.produce(e.w.next(50))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seats.Availability(), rebuild.Brokers(e.brokers...), rebuild.WithSnapshot(), rebuild.Handover(0))
	if err != nil {
		t.Fatal(err)
	}
	stopProd()
	<-prodDone
	if len(res.Snapshot) == 0 || res.Generation != 2 {
		t.Fatalf("snapshot result %+v", res)
	}
	// The replay covers only what the snapshot did not: the producer keeps
	// going during the rebuild, so the tail's length depends on how fast
	// the machine is (under load it was more than half the events), but
	// never exceeds what lies past the snapshot's positions.
	var covered int64
	for _, parts := range res.Snapshot {
		for _, pos := range parts {
			covered += pos + 1
		}
	}
	total := int64(len(e.w.events))
	if covered < 20000 {
		t.Fatalf("the snapshot covered %d offsets; g1 had applied the first 20000 events", covered)
	}
	if res.Final.Total > total-covered {
		t.Fatalf("snapshot rebuild replayed a total of %d offsets; only %d of %d lie past the snapshot", res.Final.Total, total-covered, total)
	}
	t.Logf("snapshot positions %v; tail replayed %d offsets", res.Snapshot, res.Final.Total)
	res3, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seats.Availability(), rebuild.Brokers(e.brokers...), rebuild.Handover(0), rebuild.MaxLag(0))
	if err != nil {
		t.Fatal(err)
	}
	if res3.Generation != 3 {
		t.Fatalf("full replay built g%d", res3.Generation)
	}
	// Bring both to the end, then compare everything.
	for _, g := range []int{2, 3} {
		r := e.startRunner(p, g)
		e.waitApplied(p.Name, g, time.Minute)
		r.cancel()
		<-r.done
	}
	cmp, err := rebuild.Compare(ctx, e.ch.Conn, p, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cmp.Tables {
		t.Logf("snapshot g2 vs full replay g3: %s", d)
		if d.Skipped == "" && d.Table != "parked" && d.RowsA == 0 {
			t.Errorf("%s: nothing compared", d.Table)
		}
	}
	if !cmp.Equal() {
		t.Fatal("snapshot + tail differs from a full replay")
	}
	e.assertFold(ctx, "g3 after snapshot g2")
}

// TestInPlace refuses while a projector runs the live generation, then
// truncates, rewinds and replays it into the same generation — repairing
// a corrupted row.
func TestInPlace(t *testing.T) {
	e := newEnv(t, 3)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(5000))
	e.liveG1(ctx)
	p := seats.Availability()

	running := e.startRunner(p, 1)
	time.Sleep(2 * time.Second) // joined
	_, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seats.Availability(), rebuild.Brokers(e.brokers...), rebuild.InPlace())
	if !errors.Is(err, rebuild.ErrBusy) || !strings.Contains(err.Error(), "in-place needs them stopped") {
		t.Fatalf("in-place with a running projector: want refusal, got %v", err)
	}
	running.cancel()
	<-running.done

	// Corrupt g1: a row the events never produced.
	if err := e.ch.Conn.Exec(ctx, "INSERT INTO seats__seat_availability__g1 SELECT conference_id, name, starts_at, seats_total, map('general', toInt64(999999)), reservations, cancellations, updated_at, _topic, _partition, _offset + 1000000, _event_ts FROM seats__seat_availability__g1 FINAL LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the group's member has left
	res, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seats.Availability(), rebuild.Brokers(e.brokers...), rebuild.InPlace(), rebuild.MaxLag(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Generation != 1 || res.Mode != "in-place" {
		t.Fatalf("in-place result %+v", res)
	}
	e.assertFold(ctx, "in-place rebuild")
	gens, _ := store.Generations(ctx, e.ch.Conn, p.Name)
	if len(gens) != 1 {
		t.Fatalf("in-place created generations: %v", statuses(gens))
	}
}

// TestSchemaGateRefuses puts one event with a writer schema the catalog
// does not know in the topic: the rebuild refuses before creating a
// generation and names the type, version, fingerprint and position.
func TestSchemaGateRefuses(t *testing.T) {
	e := newEnv(t, 2)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(200))
	e.liveG1(ctx)

	good, err := e.codec.Encode(ctx, e.w.next(1)[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := &kgo.Record{Topic: seats.Topic, Key: good.Key, Headers: append([]kgo.RecordHeader(nil), good.Headers...)}
	for i := range bad.Headers {
		if bad.Headers[i].Key == schemas.HeaderVersion {
			bad.Headers[i].Value = []byte("9")
		}
	}
	bad.Value = append([]byte(nil), good.Value...)
	binary.LittleEndian.PutUint64(bad.Value[2:10], 0xdeadbeefcafef00d)
	res := e.prod.ProduceSync(ctx, bad)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := res[0].Record
	_, err = rebuild.Run(ctx, e.ch.Conn, e.codec, seats.Availability(), rebuild.Brokers(e.brokers...), rebuild.GateIdle(time.Second))
	if !errors.Is(err, rebuild.ErrSchemaGate) {
		t.Fatalf("want the schema gate to refuse, got %v", err)
	}
	for _, want := range []string{"conference.", " v9 ", "deadbeefcafef00d", seats.Topic + "/" + itoa(int64(r.Partition)) + "@" + itoa(r.Offset)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("gate error does not say %q:\n%v", want, err)
		}
	}
	gens, _ := store.Generations(ctx, e.ch.Conn, "seats")
	if len(gens) != 1 {
		t.Fatalf("a refused rebuild registered generations: %v", statuses(gens))
	}
	t.Logf("gate said: %v", err)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestLockAndCap: a second rebuild of the same projection is refused while
// the first runs, and the cap on concurrent rebuilds holds.
func TestLockAndCap(t *testing.T) {
	e := newEnv(t, 2)
	ctx := context.Background()
	e.produce(e.w.setup())
	e.produce(e.w.next(20000))
	e.liveG1(ctx)

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := rebuild.Run(rctx, e.ch.Conn, e.codec, seats.Availability(), rebuild.Brokers(e.brokers...),
			rebuild.AutoCutover(false), rebuild.BatchEvents(200), rebuild.MaxLag(0), rebuild.RunnerOpts(projectors.FlushInterval(50*time.Millisecond)))
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sts, _ := store.RebuildStatuses(ctx, e.ch.Conn, "seats")
		if len(sts) > 0 && sts[0].State == rebuild.StateReplaying {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first rebuild did not start replaying")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err := rebuild.Run(ctx, e.ch.Conn, e.codec, seats.Availability(), rebuild.Brokers(e.brokers...))
	if !errors.Is(err, rebuild.ErrBusy) || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second rebuild of the same projection: want refusal, got %v", err)
	}
	other := seats.Availability()
	other.Name = "seats_copy"
	_, err = rebuild.Run(ctx, e.ch.Conn, e.codec, other, rebuild.Brokers(e.brokers...), rebuild.MaxConcurrent(1))
	if !errors.Is(err, rebuild.ErrBusy) || !strings.Contains(err.Error(), "cap is 1") {
		t.Fatalf("rebuild over the cap: want refusal, got %v", err)
	}
	cancel()
	<-done
}
