// Package rebuild regenerates a projection from its event history while the
// current generation keeps answering queries (blue/green), then switches
// readers over atomically.
//
//	res, err := rebuild.Run(ctx, conn, codec, shop.Orders(),
//		rebuild.Brokers(brokers...), rebuild.MaxLag(1000), rebuild.WithReporter(rebuild.Reporter{W: os.Stderr}))
//	// res.Generation is live now; the old one is standby for rollback:
//	_, err = rebuild.Rollback(ctx, conn, shop.Orders(), 0, false)
//
// # Phases of Run (blue/green)
//
//  1. Lock: an insert-then-read lease in _reel_rebuild_locks (see lock.go
//     for the race window), a check that the generation's consumer group
//     has no members, and a cap on rebuilds running at once.
//  2. Generation: a generation with status "building" is resumed; otherwise
//     N+1 (one more than any generation ever registered) is created. The
//     start offsets (earliest, a timestamp, explicit offsets) are resolved
//     once and kept in the status row, so a resumed run keeps them.
//  3. Schema gate (Gate): the topics' headers are scanned over the range to
//     replay; every distinct writer schema must be readable by the current
//     reader, and the catalog must pass its compatibility gate. Otherwise
//     nothing is created and the error names the event type, the writer
//     version and fingerprint/ID, and the first topic/partition@offset.
//  4. Optional snapshot (Snapshot): the live generation's tables are copied
//     at recorded positions, the State table first (see Snapshot for why
//     that keeps the runtime's invariant), and only the tail is replayed.
//  5. Replay: a projectors.Runner for N+1 with Replay(true) (side effects
//     off), WithoutViews and bigger batches. Progress — per partition
//     replayed/total from N+1's ClickHouse positions against kadm's end
//     offsets, refreshed every interval — goes to the Reporter, the
//     Prometheus metrics and the _reel_rebuilds status table (store.RebuildStatuses).
//     Canceling stops the runner after its in-flight batches; the next Run
//     resumes the same generation from its ClickHouse positions.
//  6. Compare (Compare): when the lag is under MaxLag, N and N+1 are
//     compared at the same per-partition positions, table by table, each
//     as its own stored definition made it (common tables over common
//     columns; the rest is named). A differing table is broken down into
//     rows only old / only new / changed with samples: a report. A
//     difference stops the rebuild unless the table was declared with
//     ExpectChanges (a logic change) or Force.
//  7. Cut-over: a barrier waits for N+1 to reach N's positions, side
//     effects are handed over at a precise offset per partition
//     (store.HandOverEffects), the registry records N+1 live and N
//     standby in one insert, and every view switches at once
//     (store.SwitchViews: unions gated by _reel_live, one insert).
//     The runner keeps going until `reel project` joins N+1's group
//     (Handover) and then leaves it; exactly-once positions make the
//     hand-over safe.
//
// A snapshot start refuses a definition change a copy cannot carry
// (SnapshotCarries); a start after the topics' beginning refuses a
// projection with a State table (ErrPartialState) unless PartialState.
//
// N stays standby for the grace period: `reel rollback` (Rollback) points
// the views back; `reel generations gc` (GC) drops expired generations'
// tables, checkpoints and consumer groups.
//
// # In-place: the downtime option
//
// InPlace rebuilds the live generation itself. It needs every projector of
// the projection stopped (checked: its consumer group must have no
// members), drops the generation's tables (with inboxes and guard views)
// and creates them with the current definition, forgets its checkpoints,
// deletes and rewinds its consumer group and replays. Readers see the views empty and
// filling up until it is done. Use it for small projections, or when a
// second copy of the tables does not fit.
package rebuild
