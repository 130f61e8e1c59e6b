// Package store owns the SQL of Reel's own _reel_* tables and of a
// generation's ClickHouse objects: the physical layout and DDL of a
// generation, system tables, the generations registry, positions and
// checkpoints, the fence's claims and guards, views and their switch,
// effects windows, definitions and migrations, parked events, progress
// and lag, and the settings check. The runtime (package projectors), the
// rebuild job, the CLI and the supervisor all go through it.
//
//	l := store.NewLayout(p, gen)
//	if err := store.EnsureSchema(ctx, conn, l); err != nil {
//		return err
//	}
//	applied, err := store.AppliedPositions(ctx, conn, l) // topic → partition → offset
//
// See DESIGN.md ("Exactly-once effects", "Fencing stale members",
// "Generations and cut-over", "Evolution").
package store
