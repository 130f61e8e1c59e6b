package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
)

// Side effects across generations. A projection's side effects must run
// once however many generations apply its events: the live one, the
// standby kept current for a rollback, a rebuild replaying history. With
// EffectsByGeneration a runner runs an event's effects only when the
// event's offset is inside its generation's effects window for the
// partition, recorded in _reel_effects:
//
//   - no window recorded: the generation runs every effect while it is
//     live in the registry (a projection that never cut over), none
//     otherwise (building, standby);
//   - a window (from, until]: effects of offsets in it, nothing else;
//   - a pending window: the committer waits until it is resolved.
//
// HandOverEffects moves the effects of every partition from one
// generation to another at a precise offset C (see there for why no
// effect runs twice or never). The committer reads the window after the
// batch's rows and checkpoints are durable, right before the effects.

// effectsTable holds the effects windows.
const effectsTable = "_reel_effects"

var effectsDDL = `CREATE TABLE IF NOT EXISTS ` + effectsTable + ` (
  proj LowCardinality(String), generation UInt32, topic LowCardinality(String), part UInt32,
  from_off Int64, until_off Int64, pending UInt8, recorded_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(recorded_at) ORDER BY (proj, generation, topic, part)`

// OpenEnd is the until of an open window.
const OpenEnd = math.MaxInt64

// EffectsWindow returns the (from, until] window of a generation's
// partition, waiting while it is pending.
func EffectsWindow(ctx context.Context, conn driver.Conn, proj string, gen int, k TopicPartition) (from, until int64, err error) {
	for {
		var n uint64
		var pending uint8
		err := conn.QueryRow(ctx, "SELECT count(), argMax(from_off, recorded_at), argMax(until_off, recorded_at), argMax(pending, recorded_at) FROM "+effectsTable+
			" WHERE proj = ? AND generation = ? AND topic = ? AND part = ?", proj, uint32(gen), k.Topic, uint32(k.Partition)).Scan(&n, &from, &until, &pending)
		if err != nil {
			return 0, 0, fmt.Errorf("read the effects window of %s g%d %s/%d: %w", proj, gen, k.Topic, k.Partition, err)
		}
		if n == 0 {
			status, err := GenerationStatusOf(ctx, conn, proj, gen)
			if err != nil {
				return 0, 0, err
			}
			if status == StatusLive {
				return -1, OpenEnd, nil
			}
			return -1, -1, nil
		}
		if pending == 0 {
			return from, until, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Handover is where HandOverEffects moved the effects: per topic and
// partition, the last offset whose effects the old generation runs.
type Handover map[string]map[int32]int64

// HandOverEffects moves the side effects of every partition from
// generation from to generation to, at offset C per partition:
//
//  1. Both windows are marked pending (from keeps its start; to opens).
//     From here on, a committer of either generation that is about to run
//     effects waits.
//  2. C = the higher of the two generations' applied positions, read
//     after step 1. A batch whose window check came before step 1 had its
//     rows durable before it, so its offsets are ≤ C; every later check
//     waits for step 3.
//  3. from's window becomes (F, C], to's (C, ∞) — one insert.
//
// So an event at or below C has its effects run by from only (from keeps
// running until it reaches C — the supervisor keeps a standby running),
// an event above C by to only. Per member they stay at-most-once (a crash
// between the insert and the effect loses it).
func HandOverEffects(ctx context.Context, conn driver.Conn, from, to *Layout) (Handover, error) {
	proj := to.Projection.Name
	if err := conn.Exec(ctx, effectsDDL); err != nil {
		return nil, err
	}
	pf, err := AppliedPositions(ctx, conn, from)
	if err != nil {
		return nil, err
	}
	pt, err := AppliedPositions(ctx, conn, to)
	if err != nil {
		return nil, err
	}
	parts := map[TopicPartition]bool{}
	for _, m := range []map[string]map[int32]int64{pf, pt} {
		for t, ps := range m {
			for p := range ps {
				parts[TopicPartition{t, p}] = true
			}
		}
	}
	starts := map[TopicPartition]int64{}
	for k := range parts {
		f, _, err := windowNow(ctx, conn, proj, from.Generation, k)
		if err != nil {
			return nil, err
		}
		starts[k] = f
	}
	write := func(rows func(k TopicPartition) [][4]int64) error {
		b, err := conn.PrepareBatch(chclient.WriteContext(ctx, nil), "INSERT INTO "+effectsTable+" (proj, generation, topic, part, from_off, until_off, pending, recorded_at)")
		if err != nil {
			return err
		}
		defer b.Close()
		now := time.Now().UTC()
		for k := range parts {
			for _, r := range rows(k) {
				if err := b.Append(proj, uint32(r[0]), k.Topic, uint32(k.Partition), r[1], r[2], uint8(r[3]), now); err != nil {
					return err
				}
			}
		}
		return b.Send()
	}
	g1, g2 := int64(from.Generation), int64(to.Generation)
	if err := write(func(k TopicPartition) [][4]int64 {
		return [][4]int64{{g1, starts[k], OpenEnd, 1}, {g2, -1, OpenEnd, 1}}
	}); err != nil {
		return nil, fmt.Errorf("mark the effects hand-over of %s pending: %w", proj, err)
	}
	// Positions after the mark (step 2).
	if pf, err = AppliedPositions(ctx, conn, from); err != nil {
		return nil, err
	}
	if pt, err = AppliedPositions(ctx, conn, to); err != nil {
		return nil, err
	}
	h := Handover{}
	for k := range parts {
		c := int64(-1)
		if v, ok := pf[k.Topic][k.Partition]; ok {
			c = max(c, v)
		}
		if v, ok := pt[k.Topic][k.Partition]; ok {
			c = max(c, v)
		}
		if h[k.Topic] == nil {
			h[k.Topic] = map[int32]int64{}
		}
		h[k.Topic][k.Partition] = c
	}
	if err := write(func(k TopicPartition) [][4]int64 {
		c := h[k.Topic][k.Partition]
		return [][4]int64{{g1, starts[k], max(c, starts[k]), 0}, {g2, c, OpenEnd, 0}}
	}); err != nil {
		return nil, fmt.Errorf("record the effects hand-over of %s: %w", proj, err)
	}
	return h, nil
}

// windowNow is the current window without waiting (pending or not).
func windowNow(ctx context.Context, conn driver.Conn, proj string, gen int, k TopicPartition) (from, until int64, err error) {
	var n uint64
	err = conn.QueryRow(ctx, "SELECT count(), argMax(from_off, recorded_at), argMax(until_off, recorded_at) FROM "+effectsTable+
		" WHERE proj = ? AND generation = ? AND topic = ? AND part = ?", proj, uint32(gen), k.Topic, uint32(k.Partition)).Scan(&n, &from, &until)
	if err != nil || n == 0 {
		return -1, OpenEnd, err
	}
	return from, until, nil
}
