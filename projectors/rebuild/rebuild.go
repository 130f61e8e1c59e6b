package rebuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// snapshotPrefix starts the status row's start column in snapshot mode.
const snapshotPrefix = "snapshot: "

// ErrDifferent is returned when the shadow comparison found differences
// and Force was not given; the new generation stays "building".
var ErrDifferent = errors.New("shadow comparison found differences; not cutting over (use -force to cut over anyway)")

// Result is what a rebuild did.
type Result struct {
	Projection string
	Generation int // the generation built (the live one for in-place)
	Replaces   int // the generation that was live (0 for in-place)
	Resumed    bool
	Mode       string
	Gate       GateReport
	Snapshot   map[string]map[int32]int64 // positions the snapshot copied (State table)
	Comparison *Comparison
	CutOver    bool
	// Effects is where side effects moved to the new generation: per
	// partition, the last offset whose effects the old one runs.
	Effects store.Handover
	// ViewSwitch is the summed duration of the cut-over's CREATE OR
	// REPLACE VIEW statements; Barrier the wait for the new generation to
	// reach the live one's positions before them.
	ViewSwitch time.Duration
	Barrier    time.Duration
	// SwitchWall is the wall time from the first view statement to the
	// last, including the per-view barrier re-checks between them.
	SwitchWall time.Duration
	Replayed   int64         // offsets replayed by this run
	ReplayTime time.Duration // time from the runner's start to caught-up
	Final      Progress
}

// ReplayRate is offsets replayed per second by this run.
func (r Result) ReplayRate() float64 {
	if r.ReplayTime <= 0 {
		return 0
	}
	return float64(r.Replayed) / r.ReplayTime.Seconds()
}

// job is one run of Run.
type job struct {
	cfg   cfg
	p     *projection.Projection
	conn  driver.Conn
	codec *schemas.Codec
	adm   *kadm.Client
	kcl   *kgo.Client
	st    store.RebuildStatus
	res   Result
	run0  *runner
}

// Run rebuilds projection p: see the package doc for the phases. It
// returns when the rebuild cut over (or, in-place, caught up), when it
// stopped before cut-over (manual cut-over, a difference), on error, or
// when ctx ends — then the new generation stays "building" and the next
// Run resumes it from its ClickHouse positions.
func Run(ctx context.Context, conn driver.Conn, codec *schemas.Codec, p *projection.Projection, opts ...Opt) (res Result, err error) {
	c := defaultCfg()
	for _, o := range opts {
		o(&c)
	}
	if err := c.validate(); err != nil {
		return res, err
	}
	if err := p.Validate(); err != nil {
		return res, err
	}
	if c.host == "" {
		c.host, _ = os.Hostname()
	}
	c.logger = c.logger.With("projection", p.Name)
	if err := store.EnsureSystemTables(ctx, conn); err != nil {
		return res, err
	}
	if err := store.EnsureRebuildTables(ctx, conn); err != nil {
		return res, err
	}
	kcl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, c.kgoOpts...)...)
	if err != nil {
		return res, err
	}
	defer kcl.Close()
	j := &job{cfg: c, p: p, conn: conn, codec: codec, adm: kadm.NewClient(kcl), kcl: kcl}
	j.res.Projection = p.Name

	lk, err := acquire(ctx, conn, p.Name, c.host, c.lockTTL, c.maxConcurrent, c.logger)
	if err != nil {
		return res, err
	}
	defer lk.release(context.WithoutCancel(ctx))

	err = j.run(ctx)
	if err != nil && j.st.Generation > 0 {
		j.st.State, j.st.Error = StateFailed, err.Error()
		if ctx.Err() != nil {
			j.st.State, j.st.Error = StateCanceled, "canceled: "+err.Error()
		}
		if werr := store.WriteRebuildStatus(context.WithoutCancel(ctx), conn, j.st); werr != nil {
			c.logger.Warn("could not record the rebuild's failure", "err", werr)
		}
	}
	return j.res, err
}

func (j *job) run(ctx context.Context) error {
	p, conn := j.p, j.conn
	live, err := store.LiveGeneration(ctx, conn, p)
	if err != nil {
		return err
	}
	gens, err := store.Generations(ctx, conn, p.Name)
	if err != nil {
		return err
	}
	if j.cfg.inPlace {
		return j.inPlace(ctx, live)
	}

	// Resume a building generation rather than starting another.
	target, top := 0, 0
	for _, g := range gens {
		top = max(top, g.Generation)
		if g.Status == store.StatusBuilding {
			target = g.Generation
		}
	}
	prev, err := statusOf(ctx, conn, p.Name, target)
	if err != nil {
		return err
	}
	resumed := target != 0
	if !resumed {
		target = top + 1
		prev = nil
	}
	if err := j.groupIdle(ctx, target, "another rebuild of %s is running generation %d (its consumer group %s has members)"); err != nil {
		return err
	}
	mode := "blue-green"
	if j.cfg.snapshot {
		mode = "snapshot"
	}
	j.st = store.RebuildStatus{Projection: p.Name, Generation: target, Replaces: live, Mode: mode, State: StateStarting,
		Host: j.cfg.host, StartedAt: time.Now().UTC()}
	if prev != nil {
		j.st.Mode, j.st.StartedAt, j.st.Start = prev.Mode, prev.StartedAt, prev.Start
		if prev.Mode != mode {
			j.cfg.logger.Warn("resuming a rebuild started in another mode; keeping it", "mode", prev.Mode)
		}
	}
	j.res.Generation, j.res.Replaces, j.res.Resumed, j.res.Mode = target, live, resumed, j.st.Mode
	j.cfg.logger.Info("rebuild", "generation", target, "replaces", live, "resumed", resumed, "mode", j.st.Mode)

	if j.st.Mode == "snapshot" && !resumed {
		if err := SnapshotCarries(ctx, conn, p, live); err != nil {
			return err
		}
	}
	start, err := j.startOffsets(ctx, prev)
	if err != nil {
		return err
	}
	if err := j.gate(ctx, target, start, resumed); err != nil {
		return err
	}
	if !resumed {
		if err := store.SetGeneration(ctx, conn, p, target, store.StatusBuilding, fmt.Sprintf("rebuild of g%d (%s)", live, mode)); err != nil {
			return err
		}
	}
	layout := store.NewLayout(p, target)
	// Created with (and recorded as) the current definition; a resumed
	// generation of another definition is refused here.
	if _, err := store.Evolve(ctx, conn, layout, false); err != nil {
		return err
	}
	if j.st.Mode == "snapshot" && (prev == nil || prev.State == StateSnapshot || prev.State == StateStarting || prev.State == StateGating) {
		// A snapshot interrupted half-way is redone from scratch.
		j.setState(ctx, StateSnapshot)
		if err := truncate(ctx, conn, p, target); err != nil {
			return err
		}
		t0 := time.Now()
		snap, err := Snapshot(ctx, conn, p, live, target)
		if err != nil {
			return err
		}
		j.res.Snapshot = snap
		j.st.Start = snapshotPrefix + formatPositions(snap)
		j.cfg.logger.Info("snapshot copied", "from", live, "positions", formatPositions(snap), "took", time.Since(t0))
	}
	if j.st.Mode == "snapshot" && strings.HasPrefix(j.st.Start, snapshotPrefix) {
		// Progress counts the tail only.
		snap, err := parsePositions(strings.TrimPrefix(j.st.Start, snapshotPrefix))
		if err != nil {
			return err
		}
		for t, parts := range snap {
			for p, o := range parts {
				if _, ok := start[t][p]; ok {
					start[t][p] = max(start[t][p], o+1)
				}
			}
		}
	}
	if !resumed && j.st.Mode != "snapshot" {
		if err := j.rewindGroup(ctx, target, start); err != nil {
			return err
		}
	}

	if err := j.replay(ctx, target, start); err != nil {
		return err
	}

	// Shadow compare at the same positions.
	j.setState(ctx, StateComparing)
	cmp, err := Compare(ctx, conn, p, live, target)
	if err != nil {
		return err
	}
	j.res.Comparison = &cmp
	for _, t := range cmp.Tables {
		j.cfg.logger.Info("shadow compare", "generation", target, "with", live, "table", t.String())
	}
	if diffs := j.unexpected(cmp); len(diffs) > 0 {
		if !j.cfg.force {
			// The generation stays building; the next Run resumes it.
			j.stopRunner()
			return fmt.Errorf("%w:\n  %s\n(review the report; if these are the change you made, rerun with -expect-changes %s or -force)",
				ErrDifferent, joinLines(diffs), strings.Join(differing(cmp), ","))
		}
		j.cfg.logger.Warn("shadow comparison found differences; cutting over because of -force")
	} else if !cmp.Equal() {
		j.cfg.logger.Info("shadow comparison: the differences are the declared change", "expected", j.cfg.expect)
	}
	if !j.cfg.autoCutover {
		j.setState(ctx, StateWaiting)
		j.stopRunner()
		j.cfg.logger.Info("caught up and compared; manual cut-over: run `reel rebuild " + p.Name + " -cutover auto` to resume and switch")
		return nil
	}
	if err := j.cutover(ctx, live, target); err != nil {
		return err
	}
	j.handover(ctx, target)
	j.stopRunner()
	j.setState(context.WithoutCancel(ctx), StateDone)
	return nil
}

// unexpected lists the tables whose differences were not declared with
// ExpectChanges; a table only in one definition is the change itself.
func (j *job) unexpected(cmp Comparison) []string {
	var out []string
	for _, t := range cmp.Tables {
		if t.Equal() || t.OnlyA || t.OnlyB || slices.Contains(j.cfg.expect, t.Table) {
			continue
		}
		out = append(out, t.String())
	}
	return out
}

func differing(cmp Comparison) []string {
	var out []string
	for _, t := range cmp.Tables {
		if !t.Equal() && !t.OnlyA && !t.OnlyB {
			out = append(out, t.Table)
		}
	}
	return out
}

func joinLines(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "\n  "
		}
		out += x
	}
	return out
}

// groupIdle refuses when gen's consumer group has members.
func (j *job) groupIdle(ctx context.Context, gen int, format string) error {
	grp := store.Group(j.p.Name, gen)
	var dg kadm.DescribedGroups
	var err error
	for wait := time.Now().Add(30 * time.Second); ; {
		dg, err = j.adm.DescribeGroups(ctx, grp)
		// A fresh cluster has no group coordinator for a few seconds
		// (COORDINATOR_NOT_AVAILABLE, retriable): wait for it.
		var se *kadm.ShardErrors
		if err == nil || !errors.As(err, &se) || len(se.Errs) == 0 || !kerr.IsRetriable(se.Errs[0].Err) || time.Now().After(wait) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("describe consumer group %s: %w", grp, err)
	}
	if g, ok := dg[grp]; ok && g.Err == nil && len(g.Members) > 0 {
		var who []string
		for _, m := range g.Members {
			who = append(who, m.ClientID+"@"+m.ClientHost)
		}
		return fmt.Errorf("%w: "+format+": %v", ErrBusy, j.p.Name, gen, grp, who)
	}
	return nil
}

// topicPartitions lists the projection's partitions with their start
// (log start) and end offsets.
func (j *job) offsets(ctx context.Context) (startOffs, endOffs map[string]map[int32]int64, err error) {
	so, err := j.adm.ListStartOffsets(ctx, j.p.Topics...)
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets of %v: %w", j.p.Topics, err)
	}
	eo, err := j.adm.ListEndOffsets(ctx, j.p.Topics...)
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets of %v: %w", j.p.Topics, err)
	}
	conv := func(l kadm.ListedOffsets) (map[string]map[int32]int64, error) {
		out := map[string]map[int32]int64{}
		var errs []error
		l.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				errs = append(errs, fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err))
				return
			}
			setPos(out, o.Topic, o.Partition, o.Offset)
		})
		return out, errors.Join(errs...)
	}
	if startOffs, err = conv(so); err != nil {
		return nil, nil, err
	}
	if endOffs, err = conv(eo); err != nil {
		return nil, nil, err
	}
	for _, t := range j.p.Topics {
		if len(endOffs[t]) == 0 {
			return nil, nil, fmt.Errorf("topic %s of projection %s does not exist", t, j.p.Name)
		}
	}
	return startOffs, endOffs, nil
}

// startOffsets resolves the replay's first offset per partition (recorded
// in the status row, so a resumed run keeps the first run's choice).
func (j *job) startOffsets(ctx context.Context, prev *store.RebuildStatus) (map[string]map[int32]int64, error) {
	logStart, _, err := j.offsets(ctx)
	if err != nil {
		return nil, err
	}
	if prev != nil && prev.Start != "" && j.st.Mode != "snapshot" {
		return parsePositions(prev.Start)
	}
	out := map[string]map[int32]int64{}
	for t, parts := range logStart {
		for p, o := range parts {
			setPos(out, t, p, o)
		}
	}
	switch f := j.cfg.from; f.Kind {
	case FromTimestamp:
		lo, err := j.adm.ListOffsetsAfterMilli(ctx, f.Time.UnixMilli(), j.p.Topics...)
		if err != nil {
			return nil, fmt.Errorf("offsets at %s: %w", f.Time.Format(time.RFC3339), err)
		}
		lo.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				setPos(out, o.Topic, o.Partition, max(o.Offset, out[o.Topic][o.Partition]))
			}
		})
	case FromOffsets:
		for t, parts := range f.Offsets {
			if _, ok := out[t]; !ok {
				return nil, fmt.Errorf("-from names topic %s, which projection %s does not read (%v)", t, j.p.Name, j.p.Topics)
			}
			for p, o := range parts {
				if _, ok := out[t][p]; !ok {
					return nil, fmt.Errorf("-from names partition %s/%d, which does not exist", t, p)
				}
				setPos(out, t, p, max(o, out[t][p]))
			}
		}
	}
	if err := j.checkPartialState(logStart, out); err != nil {
		return nil, err
	}
	if j.st.Mode != "snapshot" {
		j.st.Start = formatPositions(out)
	}
	return out, nil
}

// ErrPartialState refuses a replay that starts after the beginning of the
// topics for a projection with a State table: Apply reads each
// aggregate's state, and the state built by the skipped events is not
// there, so the State table (and everything Apply derives from it) would
// be wrong for every aggregate with earlier events.
var ErrPartialState = errors.New("a replay from this start skips events the projection's State table is built from")

func (j *job) checkPartialState(logStart, start map[string]map[int32]int64) error {
	if j.st.Mode == "snapshot" {
		return nil // the snapshot carries the state
	}
	state := ""
	for _, t := range j.p.Tables {
		if t.State {
			state = t.Name
		}
	}
	if state == "" {
		return nil
	}
	var skipped []string
	for t, parts := range start {
		for p, o := range parts {
			if o > logStart[t][p] {
				skipped = append(skipped, fmt.Sprintf("%s/%d: %d events", t, p, o-logStart[t][p]))
			}
		}
	}
	if len(skipped) == 0 {
		return nil
	}
	sortStrings(skipped)
	if !j.cfg.partialState {
		return fmt.Errorf("%w (%s) — state table %s of %s would start empty for aggregates with earlier events; rebuild from earliest, use -snapshot (copies the state), or pass -partial-state if the projection's aggregates begin after that point",
			ErrPartialState, strings.Join(skipped, ", "), state, j.p.Name)
	}
	j.cfg.logger.Warn("replay skips events the State table is built from (-partial-state)", "table", state, "skipped", skipped)
	return nil
}

// gate runs the schema gate over what the replay will read.
func (j *job) gate(ctx context.Context, gen int, start map[string]map[int32]int64, resumed bool) error {
	j.setState(ctx, StateGating)
	_, end, err := j.offsets(ctx)
	if err != nil {
		return err
	}
	from := map[string]map[int32]int64{}
	var applied map[string]map[int32]int64
	if resumed {
		// What an earlier run applied was gated by it.
		if applied, err = store.AppliedPositions(ctx, j.conn, store.NewLayout(j.p, gen)); err != nil {
			applied = nil // the generation's tables may not exist yet
		}
	}
	for t, parts := range start {
		for p, o := range parts {
			if a, ok := applied[t][p]; ok {
				o = max(o, a+1) // gated by an earlier run
			}
			setPos(from, t, p, o)
		}
	}
	rep, err := Gate(ctx, j.codec, append([]kgo.Opt{kgo.SeedBrokers(j.cfg.brokers...)}, j.cfg.kgoOpts...), from, end, j.cfg.gateIdle)
	j.res.Gate = rep
	if err != nil {
		return err
	}
	j.cfg.logger.Info("schema gate", "scanned", rep.Scanned, "writers", len(rep.Writers), "took", rep.Duration, "unfinished", rep.Unfinished)
	return rep.Err()
}

// rewindGroup commits the generation's group offsets at the start offsets.
// The runtime resumes from ClickHouse, not from these; they make the
// group's lag right in every Kafka tool from the first second.
func (j *job) rewindGroup(ctx context.Context, gen int, start map[string]map[int32]int64) error {
	grp := store.Group(j.p.Name, gen)
	os := kadm.Offsets{}
	for t, parts := range start {
		for p, o := range parts {
			os.Add(kadm.Offset{Topic: t, Partition: p, At: o, LeaderEpoch: -1})
		}
	}
	resp, err := j.adm.CommitOffsets(ctx, grp, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("rewind consumer group %s: %w", grp, err)
	}
	return nil
}

func (j *job) setState(ctx context.Context, state string) {
	j.st.State = state
	if err := store.WriteRebuildStatus(ctx, j.conn, j.st); err != nil {
		j.cfg.logger.Warn("could not record rebuild status", "state", state, "err", err)
	}
}

func sortStrings(s []string) { sort.Strings(s) }
func sortInt32(s []int32)    { slices.Sort(s) }
func nowUTC() time.Time      { return time.Now().UTC() }
