// Package projectors is the runtime that runs projections: a Runner per
// generation of a projection in its consumer group, its partition workers
// (queue, applier, committer), the fence against stale members, DLQ
// replay, options and metrics.
//
//	r, err := projectors.NewRunner(p, conn, codec, projectors.Brokers(brokers...))
//	if err != nil {
//		return err
//	}
//	return r.Run(ctx)
//
// A projection's author imports projectors/projection (Projection, Tx);
// the SQL of Reel's own _reel_* tables and of a generation's objects is
// projectors/store. See DESIGN.md for the invariants the runtime keeps.
package projectors
