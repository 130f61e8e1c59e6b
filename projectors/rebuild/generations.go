package rebuild

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// RollbackResult says what Rollback switched.
type RollbackResult struct {
	From, To   int
	ViewSwitch time.Duration
}

// Rollback points p's views back at generation to (0: the newest standby
// generation) and makes it live; the generation that was live becomes
// standby, so rolling forward again is another Rollback. Like cut-over it
// records both statuses in one insert, then re-points the views.
//
// The standby generation is current only while `reel project` keeps it
// running (the supervisor runs standby generations); a retired one has
// stopped and is refused unless force.
func Rollback(ctx context.Context, conn driver.Conn, p *projection.Projection, to int, force bool) (RollbackResult, error) {
	var res RollbackResult
	gens, err := store.Generations(ctx, conn, p.Name)
	if err != nil {
		return res, err
	}
	var target *store.GenerationInfo
	for i := range gens {
		g := &gens[i]
		switch {
		case g.Status == store.StatusLive:
			res.From = g.Generation
		case to == 0 && g.Status == store.StatusStandby:
			if target == nil || g.Generation > target.Generation {
				target = g
			}
		case to == g.Generation:
			target = g
		}
	}
	if res.From == 0 {
		return res, fmt.Errorf("projection %s has no live generation", p.Name)
	}
	if target == nil {
		if to != 0 {
			return res, fmt.Errorf("projection %s has no generation %d", p.Name, to)
		}
		return res, fmt.Errorf("projection %s has no standby generation to roll back to (generations: %v)", p.Name, summarize(gens))
	}
	switch target.Status {
	case store.StatusStandby:
	case store.StatusRetired:
		if !force {
			return res, fmt.Errorf("generation %d of %s is retired (no longer kept current); use -force to roll back to it anyway", target.Generation, p.Name)
		}
	default:
		return res, fmt.Errorf("cannot roll back %s to generation %d: it is %s", p.Name, target.Generation, target.Status)
	}
	res.To = target.Generation
	// The code must be able to run the generation it makes live.
	m, err := store.PlanMigration(ctx, conn, store.NewLayout(p, res.To), false)
	if err == nil {
		err = m.Err()
	}
	if err != nil {
		return res, fmt.Errorf("cannot roll %s back to g%d with this code: %w (deploy the code of g%d's definition, then roll back)", p.Name, res.To, err, res.To)
	}
	from, err := store.StoredLayout(ctx, conn, p, res.From)
	if err != nil {
		return res, err
	}
	if _, err := store.HandOverEffects(ctx, conn, from, store.NewLayout(p, res.To)); err != nil {
		return res, err
	}
	if err := store.SetGenerations(ctx, conn, p,
		store.GenerationStatus{Generation: res.To, Status: store.StatusLive, Note: fmt.Sprintf("rolled back from g%d", res.From)},
		store.GenerationStatus{Generation: res.From, Status: store.StatusStandby, Note: fmt.Sprintf("rolled back to g%d", res.To)},
	); err != nil {
		return res, err
	}
	t0 := time.Now()
	if err := store.SwitchViews(ctx, conn, from, store.NewLayout(p, res.To)); err != nil {
		return res, err
	}
	res.ViewSwitch = time.Since(t0)
	return res, nil
}

func summarize(gens []store.GenerationInfo) []string {
	var out []string
	for _, g := range gens {
		out = append(out, fmt.Sprintf("g%d %s", g.Generation, g.Status))
	}
	return out
}

// GCOptions tunes GC.
type GCOptions struct {
	// Grace applies to generations without a recorded keep-until (e.g.
	// rolled-back ones): kept this long after their last status change.
	// Default 24h.
	Grace time.Duration
	// Wait is how long to wait for a retired generation's consumer group
	// to empty (the supervisor notices "retired" on its next poll).
	// Default 30s.
	Wait time.Duration
	// Abandoned also drops building generations whose rebuild failed or
	// was canceled longer than Grace ago.
	Abandoned bool
	DryRun    bool
	Now       time.Time // default time.Now()
}

// GCAction is what GC did (or would do) with one generation.
type GCAction struct {
	Generation int
	Status     string // status before GC
	Action     string // "dropped", "kept until …", "busy: …", "would drop"
}

// GC drops p's standby and retired generations whose grace period is
// over: it retires them (the supervisor stops running them), waits until
// their consumer group is empty, drops their tables, forgets their
// checkpoints, deletes their consumer group and records them dropped.
func GC(ctx context.Context, conn driver.Conn, adm *kadm.Client, p *projection.Projection, o GCOptions) ([]GCAction, error) {
	if o.Grace == 0 {
		o.Grace = 24 * time.Hour
	}
	if o.Wait == 0 {
		o.Wait = 30 * time.Second
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	gens, err := store.Generations(ctx, conn, p.Name)
	if err != nil {
		return nil, err
	}
	sts, err := store.RebuildStatuses(ctx, conn, p.Name)
	if err != nil {
		return nil, err
	}
	var out []GCAction
	var errs []error
	for _, g := range gens {
		keep := g.UpdatedAt.Add(o.Grace)
		switch g.Status {
		case store.StatusStandby, store.StatusRetired:
			for _, s := range sts {
				// The rebuild that replaced g recorded its -grace.
				if s.Replaces == g.Generation && s.KeepUntil.After(time.Unix(0, 0)) {
					keep = s.KeepUntil
				}
			}
		case store.StatusBuilding:
			if !o.Abandoned {
				continue
			}
			abandoned := false
			for _, s := range sts {
				if s.Generation == g.Generation && (s.State == StateFailed || s.State == StateCanceled) {
					abandoned, keep = true, s.UpdatedAt.Add(o.Grace)
				}
			}
			if !abandoned {
				continue
			}
		default:
			continue
		}
		a := GCAction{Generation: g.Generation, Status: g.Status}
		if o.Now.Before(keep) {
			a.Action = "kept until " + keep.UTC().Format(time.RFC3339)
			out = append(out, a)
			continue
		}
		if o.DryRun {
			a.Action = "would drop"
			out = append(out, a)
			continue
		}
		if err := dropGeneration(ctx, conn, adm, p, g, o.Wait); err != nil {
			a.Action = "busy: " + err.Error()
			errs = append(errs, fmt.Errorf("g%d: %w", g.Generation, err))
		} else {
			a.Action = "dropped"
		}
		out = append(out, a)
	}
	return out, errors.Join(errs...)
}

func dropGeneration(ctx context.Context, conn driver.Conn, adm *kadm.Client, p *projection.Projection, g store.GenerationInfo, wait time.Duration) error {
	if g.Status != store.StatusRetired {
		if err := store.SetGeneration(ctx, conn, p, g.Generation, store.StatusRetired, "gc: grace period over"); err != nil {
			return err
		}
	}
	grp := store.Group(p.Name, g.Generation)
	deadline := time.Now().Add(wait)
	for {
		dg, err := adm.DescribeGroups(ctx, grp)
		if err != nil {
			return err
		}
		if d, ok := dg[grp]; !ok || len(d.Members) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consumer group %s still has members after %s; is a projector still running it? (retired; run gc again)", grp, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	// The views may still be unions over g (a switch's first step): point
	// them at the served generation alone before its tables go.
	if live, err := store.LiveServed(ctx, conn, p.Name); err == nil && live > 0 && live != g.Generation {
		if err := store.CreateViews(ctx, conn, store.NewLayout(p, live)); err != nil {
			return err
		}
	}
	// The tables its own definition created (the code's may have others).
	l, err := store.StoredLayout(ctx, conn, p, g.Generation)
	if err != nil {
		return err
	}
	if err := dropTables(ctx, conn, l); err != nil {
		return err
	}
	if err := store.ForgetGeneration(ctx, conn, p.Name, g.Generation); err != nil {
		return err
	}
	resp, err := adm.DeleteGroups(ctx, grp)
	if err == nil {
		if r, ok := resp[grp]; ok && r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
			err = r.Err
		}
	}
	if err != nil {
		return fmt.Errorf("delete consumer group %s: %w", grp, err)
	}
	return store.SetGeneration(ctx, conn, p, g.Generation, store.StatusDropped, "gc: tables and group dropped")
}
