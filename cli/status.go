package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// cmdStatus prints, per projection and generation: status, consumer group,
// partitions with applied vs end offset, lag, parked aggregates and the
// newest applied event time.
//
//	reel status -config reel.yaml [-projection seats_availability] [-json]
func (pr *program) cmdStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file")
	only := fs.String("projection", "", "only this projection")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return errors.Join(errUsage, err)
	}
	cfg, err := pr.loadConfig(*path, os.Stderr)
	if err != nil {
		return err
	}
	st, err := collectStatus(ctx, cfg, *only)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return writeStatus(os.Stdout, st)
}

// Status is `reel status -json`.
type Status struct {
	Projections []ProjectionStatus `json:"projections"`
}

// ProjectionStatus is one projection.
type ProjectionStatus struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Version     int                `json:"version"`
	Generations []GenerationStatus `json:"generations"`
}

// GenerationStatus is one generation of a projection.
type GenerationStatus struct {
	Generation       int               `json:"generation"`
	Status           string            `json:"status"`
	Group            string            `json:"group"`
	GroupState       string            `json:"group_state"`
	Members          int               `json:"members"`
	LogicVersion     int               `json:"logic_version"`
	ParkedAggregates int               `json:"parked_aggregates"`
	ParkedEvents     int               `json:"parked_events"`
	Lag              int64             `json:"lag"`
	LastEventTime    *time.Time        `json:"last_event_time,omitempty"`
	Partitions       []PartitionStatus `json:"partitions"`
	Error            string            `json:"error,omitempty"`
}

// PartitionStatus is one topic partition of a generation.
type PartitionStatus struct {
	Topic         string     `json:"topic"`
	Partition     int32      `json:"partition"`
	Applied       int64      `json:"applied_offset"` // -1: nothing applied yet
	End           int64      `json:"end_offset"`
	Lag           int64      `json:"lag"`
	LastEventTime *time.Time `json:"last_event_time,omitempty"`
}

func collectStatus(ctx context.Context, cfg *config.Config, only string) (*Status, error) {
	conn, err := app.OpenClickHouse(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	kopts, err := app.KafkaOpts(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	projs, err := projectionsOf(cfg, only)
	if err != nil {
		return nil, err
	}
	return statusOf(ctx, conn, kadm.NewClient(cl), projs)
}

// projectionsOf returns the configured projections (built-in and
// declared, config.SelectProjections), or only the named one.
func projectionsOf(cfg *config.Config, only string) ([]*projection.Projection, error) {
	if only != "" {
		p, err := cfg.Projection(only)
		if err != nil {
			return nil, err
		}
		return []*projection.Projection{p}, nil
	}
	cat, err := cfg.LoadCatalog()
	if err != nil {
		return nil, err
	}
	return cfg.SelectProjections(cat)
}

func statusOf(ctx context.Context, conn driver.Conn, adm *kadm.Client, projs []*projection.Projection) (*Status, error) {
	if err := store.EnsureSystemTables(ctx, conn); err != nil {
		return nil, err
	}
	st := &Status{Projections: []ProjectionStatus{}}
	ends := map[string]kadm.ListedOffsets{}
	for _, p := range projs {
		ps := ProjectionStatus{Name: p.Name, Description: p.Description, Version: p.Version, Generations: []GenerationStatus{}}
		gens, err := store.Generations(ctx, conn, p.Name)
		if err != nil {
			return nil, err
		}
		for _, g := range gens {
			gs := GenerationStatus{Generation: g.Generation, Status: g.Status, Group: g.Group, LogicVersion: g.LogicVersion, Partitions: []PartitionStatus{}}
			if g.Status == store.StatusDropped {
				ps.Generations = append(ps.Generations, gs)
				continue
			}
			var errs []error
			if dg, err := adm.DescribeGroups(ctx, g.Group); err == nil {
				if d, ok := dg[g.Group]; ok && d.Err == nil {
					gs.GroupState, gs.Members = d.State, len(d.Members)
				}
			}
			gs.ParkedAggregates, gs.ParkedEvents, err = store.ParkedCounts(ctx, conn, p.Name, g.Generation)
			errs = append(errs, err)
			prog, err := store.QueryProgress(ctx, conn, p, g.Generation)
			errs = append(errs, err)
			applied := map[string]map[int32]store.PartitionProgress{}
			for _, pp := range prog {
				if applied[pp.Topic] == nil {
					applied[pp.Topic] = map[int32]store.PartitionProgress{}
				}
				applied[pp.Topic][pp.Partition] = pp
			}
			for _, topic := range p.Topics {
				end, ok := ends[topic]
				if !ok {
					end, err = adm.ListEndOffsets(ctx, topic)
					if err == nil {
						err = end.Error()
					}
					if err != nil {
						errs = append(errs, fmt.Errorf("end offsets of %s: %w", topic, err))
						continue
					}
					ends[topic] = end
				}
				var parts []kadm.ListedOffset
				end.Each(func(o kadm.ListedOffset) { parts = append(parts, o) })
				sort.Slice(parts, func(i, j int) bool { return parts[i].Partition < parts[j].Partition })
				for _, o := range parts {
					pst := PartitionStatus{Topic: topic, Partition: o.Partition, Applied: -1, End: o.Offset}
					if pp, ok := applied[topic][o.Partition]; ok {
						pst.Applied = pp.Applied
						if !pp.EventTime.IsZero() {
							t := pp.EventTime
							pst.LastEventTime = &t
							if gs.LastEventTime == nil || t.After(*gs.LastEventTime) {
								gs.LastEventTime = &t
							}
						}
					}
					pst.Lag = store.Lag(o.Offset, pst.Applied, 0)
					gs.Lag += pst.Lag
					gs.Partitions = append(gs.Partitions, pst)
				}
			}
			if err := errors.Join(errs...); err != nil {
				gs.Error = err.Error()
			}
			ps.Generations = append(ps.Generations, gs)
		}
		st.Projections = append(st.Projections, ps)
	}
	return st, nil
}

func writeStatus(w io.Writer, st *Status) error {
	fmtTime := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for i, p := range st.Projections {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (v%d) %s\n", p.Name, p.Version, p.Description)
		if len(p.Generations) == 0 {
			fmt.Fprintln(w, "  never run")
			continue
		}
		for _, g := range p.Generations {
			state := g.GroupState
			if state == "" {
				state = "-"
			}
			fmt.Fprintf(w, "  g%d %s  group %s (%s, %d members)  lag %d  parked %d aggregates / %d events  last event %s\n",
				g.Generation, g.Status, g.Group, state, g.Members, g.Lag, g.ParkedAggregates, g.ParkedEvents, fmtTime(g.LastEventTime))
			if g.Error != "" {
				fmt.Fprintf(w, "    error: %s\n", g.Error)
			}
			if len(g.Partitions) == 0 {
				continue
			}
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "    TOPIC\tPARTITION\tAPPLIED\tEND\tLAG\tLAST EVENT")
			for _, pt := range g.Partitions {
				fmt.Fprintf(tw, "    %s\t%d\t%d\t%d\t%d\t%s\n", pt.Topic, pt.Partition, pt.Applied, pt.End, pt.Lag, fmtTime(pt.LastEventTime))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}
