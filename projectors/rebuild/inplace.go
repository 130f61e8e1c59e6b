package rebuild

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// inPlace rebuilds the live generation itself — the downtime option. It
// refuses while any projector of the generation runs (its consumer group
// has members), because a running projector holds positions and cached
// state that the truncation would make wrong. Then it truncates the
// generation's tables, forgets its checkpoints, deletes its consumer group
// (offsets included) and replays into the same tables until the lag is
// under MaxLag. The stable views keep pointing at the generation, so
// readers see it empty and then filling up: that is the downtime.
//
// Race window: a projector that starts between the group check and the
// truncation is not stopped; keep `reel project` for this projection
// stopped (scale it to zero or leave it out of projector.projections)
// until the rebuild is done. A killed in-place rebuild resumes without
// truncating again (the status row says it was in progress).
func (j *job) inPlace(ctx context.Context, live int) error {
	if err := j.groupIdle(ctx, live, "projectors of %s are running generation %d (consumer group %s has members); -in-place needs them stopped — or rebuild without -in-place (blue/green, no downtime)"); err != nil {
		return err
	}
	prev, err := statusOf(ctx, j.conn, j.p.Name, live)
	if err != nil {
		return err
	}
	resume := prev != nil && prev.Mode == "in-place" && prev.State != StateDone
	if !resume {
		prev = nil
	}
	j.st = store.RebuildStatus{Projection: j.p.Name, Generation: live, Mode: "in-place", State: StateStarting, Host: j.cfg.host, StartedAt: time.Now().UTC()}
	if prev != nil {
		j.st.StartedAt = prev.StartedAt
	}
	j.res.Generation, j.res.Mode, j.res.Resumed = live, "in-place", resume
	start, err := j.startOffsets(ctx, prev)
	if err != nil {
		return err
	}
	if err := j.gate(ctx, live, start, resume); err != nil {
		return err
	}
	layout := store.NewLayout(j.p, live)
	if !resume {
		j.setState(ctx, StateReplaying) // from here on, a rerun resumes
		// Dropped and created again with the current definition (tables,
		// inboxes, guard views), whatever the stored one was: an in-place
		// rebuild is how a destructive change reaches the live generation
		// without a second copy.
		if err := recreate(ctx, j.conn, j.p, live); err != nil {
			return err
		}
		if err := store.CreateViews(ctx, j.conn, layout); err != nil {
			return err
		}
		grp := store.Group(j.p.Name, live)
		resp, err := j.adm.DeleteGroups(ctx, grp)
		if err == nil {
			if r, ok := resp[grp]; ok && r.Err != nil && r.Err != kerr.GroupIDNotFound {
				err = r.Err
			}
		}
		if err != nil {
			return fmt.Errorf("delete consumer group %s: %w", grp, err)
		}
		if err := j.rewindGroup(ctx, live, start); err != nil {
			return err
		}
		j.cfg.logger.Info("in-place: truncated and rewound", "generation", live, "group", grp)
	}
	if err := store.EnsureSchema(ctx, j.conn, layout); err != nil {
		return err
	}
	if err := j.replay(ctx, live, start); err != nil {
		return err
	}
	j.stopRunner()
	j.setState(context.WithoutCancel(ctx), StateDone)
	return nil
}

// recreate drops generation gen's tables as its stored definition made them
// (with their inboxes and guard views), forgets its checkpoints and resolved
// parked events, creates the tables of p's definition and records it as the
// generation's next revision. Claims in _reel_owners are kept: epochs must
// keep rising.
func recreate(ctx context.Context, conn driver.Conn, p *projection.Projection, gen int) error {
	old, err := store.StoredLayout(ctx, conn, p, gen)
	if err != nil {
		return err
	}
	_, rev, err := store.StoredDefinition(ctx, conn, p.Name, gen)
	if err != nil {
		return err
	}
	if err := dropTables(ctx, conn, old); err != nil {
		return err
	}
	if err := truncate(ctx, conn, p, gen); err != nil { // checkpoints and resolutions
		return err
	}
	l := store.NewLayout(p, gen)
	if err := store.EnsureSchema(ctx, conn, l); err != nil {
		return err
	}
	return store.RecordDefinition(ctx, conn, p, gen, rev+1, "re-created by an in-place rebuild", nil)
}

// dropTables drops every table of a layout with its guard view and inbox
// (the guard first: it writes into the table).
func dropTables(ctx context.Context, conn driver.Conn, l *store.Layout) error {
	for _, t := range l.Tables {
		for _, name := range []string{t.Guard, t.Inbox, t.Name} {
			if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
				return fmt.Errorf("drop %s: %w", name, err)
			}
		}
	}
	return nil
}
