package rebuild

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/store"
)

// runner is the replay's projectors.Runner running in the background.
type runner struct {
	cancel context.CancelFunc
	done   chan error
}

func (j *job) startRunner(gen int, start map[string]map[int32]int64) error {
	so := map[string]map[int32]kgo.Offset{}
	for t, parts := range start {
		so[t] = map[int32]kgo.Offset{}
		for p, o := range parts {
			so[t][p] = kgo.NewOffset().At(o)
		}
	}
	opts := append([]projectors.Opt{
		projectors.Brokers(j.cfg.brokers...),
		projectors.KafkaOpts(j.cfg.kgoOpts...),
		projectors.Generation(gen),
		projectors.WithoutViews(),
		projectors.Replay(true),
		// Side effects: none while building; after the cut-over the
		// effects hand-over gives this generation the offsets past C,
		// which this runner runs until `reel project` takes over.
		projectors.EffectsByGeneration(),
		projectors.BatchEvents(j.cfg.batch),
		projectors.StartOffsets(so),
		projectors.Logger(j.cfg.logger),
	}, j.cfg.runnerOpts...)
	r, err := projectors.NewRunner(j.p, j.conn, j.codec, opts...)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	j.run0 = &runner{cancel: cancel, done: make(chan error, 1)}
	go func(done chan error) { done <- r.Run(rctx) }(j.run0.done)
	return nil
}

// stopRunner stops the replay runner gracefully (in-flight batches flush).
func (j *job) stopRunner() {
	if j.run0 == nil {
		return
	}
	j.run0.cancel()
	<-j.run0.done
	j.run0 = nil
}

// replay runs generation gen until its lag is at most MaxLag, sampling
// progress every interval. The runner keeps running on success (compare
// and cut-over follow); on error or cancellation it is stopped.
func (j *job) replay(ctx context.Context, gen int, start map[string]map[int32]int64) (err error) {
	j.setState(ctx, StateReplaying)
	if err := j.startRunner(gen, start); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			j.stopRunner()
		}
	}()
	layout := store.NewLayout(j.p, gen)
	tr := newTracker(time.Now())
	t0 := time.Now()
	first := int64(-1)
	lastStatus := time.Time{}
	tick := time.NewTicker(j.cfg.interval)
	defer tick.Stop()
	defer j.cfg.reporter.done()
	for {
		_, end, err := j.offsets(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			j.cfg.logger.Warn("cannot refresh end offsets", "err", err)
		}
		applied, perr := store.AppliedPositions(ctx, j.conn, layout)
		if perr != nil && ctx.Err() == nil {
			j.cfg.logger.Warn("cannot read the new generation's positions", "err", perr)
		}
		if err == nil && perr == nil {
			var parts []PartitionProgress
			for t, ps := range start {
				for p, s := range ps {
					a, ok := applied[t][p]
					if !ok {
						a = -1
					}
					parts = append(parts, PartitionProgress{Topic: t, Partition: p, Start: s, Applied: a, End: max(end[t][p], s)})
				}
			}
			pr := tr.observe(time.Now(), parts)
			pr.Projection, pr.Generation = j.p.Name, gen
			if first < 0 {
				first = pr.Replayed
			}
			j.res.Final = pr
			if j.cfg.metrics != nil {
				j.cfg.metrics.set(pr)
			}
			j.cfg.reporter.show(pr, j.st.State)
			j.st.Replayed, j.st.Total, j.st.Lag, j.st.Rate, j.st.ETA = uint64(pr.Replayed), uint64(pr.Total), uint64(pr.Lag), pr.Rate, pr.ETA
			if pr.Lag <= j.cfg.maxLag {
				j.res.Replayed, j.res.ReplayTime = pr.Replayed-first, time.Since(t0)
				j.setState(ctx, j.st.State)
				return nil
			}
			if time.Since(lastStatus) >= j.cfg.statusEvery {
				lastStatus = time.Now()
				j.setState(ctx, j.st.State)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-j.run0.done:
			j.run0 = nil
			if err == nil {
				err = errors.New("stopped")
			}
			return fmt.Errorf("replay runner of %s g%d: %w", j.p.Name, gen, err)
		case <-tick.C:
		}
	}
}

// covers reports whether every position in want is reached in have.
func covers(have, want map[string]map[int32]int64) bool {
	for t, parts := range want {
		for p, o := range parts {
			h, ok := have[t][p]
			if !ok {
				h = -1
			}
			if h < o {
				return false
			}
		}
	}
	return true
}

// cutover switches the views from live to target. The registry is written
// first, in one insert (target live, live standby), because it is what
// `reel project` converges the views to after a crash; then the views are
// re-pointed, each CREATE OR REPLACE VIEW being atomic.
//
// Before that, a barrier waits (at most Barrier) until the new generation
// holds at least the live generation's positions, so readers do not see
// time step back at the switch. The live generation keeps moving during the
// few milliseconds between the barrier's last read and the switch: answers
// may step back by what it applied in that window (at most one batch per
// partition), never more.
func (j *job) cutover(ctx context.Context, live, target int) error {
	j.setState(ctx, StateCutover)
	// The live generation's tables as its own definition made them.
	la, err := store.StoredLayout(ctx, j.conn, j.p, live)
	if err != nil {
		return err
	}
	lt := store.NewLayout(j.p, target)
	t0 := time.Now()
	for {
		pa, err := store.AppliedPositions(ctx, j.conn, la)
		if err != nil {
			return err
		}
		pt, err := store.AppliedPositions(ctx, j.conn, lt)
		if err != nil {
			return err
		}
		if covers(pt, pa) {
			break
		}
		if time.Since(t0) > j.cfg.barrier {
			j.cfg.logger.Warn("new generation did not reach the live one's positions in time; cutting over with the lag under -max-lag", "barrier", j.cfg.barrier)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	j.res.Barrier = time.Since(t0)
	keep := time.Now().Add(j.cfg.grace).UTC()
	ho, err := store.HandOverEffects(ctx, j.conn, la, lt)
	if err != nil {
		return err
	}
	j.res.Effects = ho
	j.cfg.logger.Info("side effects handed over", "from", live, "to", target, "at", fmt.Sprint(ho))
	if err := store.SetGenerations(ctx, j.conn, j.p,
		store.GenerationStatus{Generation: target, Status: store.StatusLive, Note: fmt.Sprintf("rebuilt; replaced g%d", live)},
		store.GenerationStatus{Generation: live, Status: store.StatusStandby, Note: fmt.Sprintf("replaced by g%d; keep until %s", target, keep.Format(time.RFC3339))},
	); err != nil {
		return err
	}
	// Every view switches at once: they are re-created as unions of both
	// generations gated by _reel_live, then one insert flips it.
	t1 := time.Now()
	if err := store.SwitchViews(ctx, j.conn, la, lt); err != nil {
		return fmt.Errorf("switch the views of %s to g%d: %w", j.p.Name, target, err)
	}
	j.res.ViewSwitch = time.Since(t1)
	j.res.SwitchWall = time.Since(t1)
	j.res.CutOver = true
	j.st.KeepUntil = keep
	if j.cfg.metrics != nil {
		j.cfg.metrics.cut.WithLabelValues(j.p.Name, fmt.Sprint(target)).Set(j.res.ViewSwitch.Seconds())
	}
	j.cfg.logger.Info("cut over", "from", live, "to", target, "barrier", j.res.Barrier, "view_switch", j.res.ViewSwitch, "switch_wall", j.res.SwitchWall, "keep_old_until", keep)
	return nil
}

// handover keeps the new generation's runner going until another member
// joins its group (`reel project` picked up the live generation), at most
// Handover; then the caller stops it and the other member takes over from
// the ClickHouse positions.
func (j *job) handover(ctx context.Context, gen int) {
	if j.cfg.handover <= 0 {
		return
	}
	grp := store.Group(j.p.Name, gen)
	deadline := time.Now().Add(j.cfg.handover)
	for time.Now().Before(deadline) {
		dg, err := j.adm.DescribeGroups(ctx, grp)
		if err == nil {
			if g, ok := dg[grp]; ok && len(g.Members) > 1 {
				j.cfg.logger.Info("handed over", "group", grp, "members", len(g.Members))
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	j.cfg.logger.Warn("no projector joined the new live generation's group; stopping the rebuild's runner anyway (start `reel project`)", "group", grp, "waited", j.cfg.handover)
}
