package rebuild

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/projectors/store"
)

// Rebuild states in store.RebuildsTable (`reel status` shows them).
const (
	StateStarting  = "starting"  // lock taken, generation chosen
	StateGating    = "gating"    // schema gate scanning the topics
	StateSnapshot  = "snapshot"  // copying the live generation's tables
	StateReplaying = "replaying" // replaying history into the new generation
	StateComparing = "comparing" // shadow compare with the live generation
	StateWaiting   = "waiting"   // caught up, waiting for a manual cut-over
	StateCutover   = "cutover"   // views switched, statuses flipped
	StateDone      = "done"      // finished (cut over, or in-place caught up)
	StateFailed    = "failed"    // stopped with an error (see error column)
	StateCanceled  = "canceled"  // stopped by the operator; resumable
)

// statusOf returns the recorded status of one generation's rebuild.
func statusOf(ctx context.Context, conn driver.Conn, projection string, gen int) (*store.RebuildStatus, error) {
	all, err := store.RebuildStatuses(ctx, conn, projection)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Generation == gen {
			return &all[i], nil
		}
	}
	return nil, nil
}
