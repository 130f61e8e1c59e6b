package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/rebuild"
	"github.com/reel-dev/reel/projectors/store"
)

// cmdRollback: reel rollback <projection> [-to N] — point the views back at
// the standby generation (the one a rebuild replaced).
func (pr *program) cmdRollback(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: reel rollback <projection> -config reel.yaml [-to N] [-force]", errUsage)
	}
	fs := flag.NewFlagSet("rollback "+args[0], flag.ContinueOnError)
	cf := pr.clientFlags(fs)
	to := fs.Int("to", 0, "generation to make live (default: the newest standby one)")
	force := fs.Bool("force", false, "allow rolling back to a retired (no longer current) generation")
	if err := fs.Parse(args[1:]); err != nil {
		return errors.Join(errUsage, err)
	}
	cfg, p, err := cf.loadProjection(args[0])
	if err != nil {
		return err
	}
	conn, err := app.OpenClickHouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := rebuild.Rollback(ctx, conn, p, *to, *force)
	if err != nil {
		return err
	}
	fmt.Printf("%s: views point at g%d again (g%d is standby); view switch %s\n", p.Name, res.To, res.From, res.ViewSwitch.Round(time.Millisecond))
	return nil
}

// cmdGenerations: reel generations list|gc [<projection>] — the generation
// registry and the rebuilds, and dropping generations past their grace.
func (pr *program) cmdGenerations(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "gc") {
		return fmt.Errorf("%w: reel generations list|gc [<projection>] -config reel.yaml [-grace 24h] [-dry-run] [-abandoned]", errUsage)
	}
	action := args[0]
	args = args[1:]
	var only string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		only, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("generations "+action, flag.ContinueOnError)
	cf := pr.clientFlags(fs)
	grace := fs.Duration("grace", 24*time.Hour, "gc: grace for generations without a recorded keep-until")
	dry := fs.Bool("dry-run", false, "gc: say what would be dropped")
	abandoned := fs.Bool("abandoned", false, "gc: also drop building generations whose rebuild failed or was canceled more than -grace ago")
	if err := fs.Parse(args); err != nil {
		return errors.Join(errUsage, err)
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	projs, err := cfg.AllProjections()
	if err != nil {
		return err
	}
	if only != "" {
		p, err := cfg.Projection(only)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		projs = []*projection.Projection{p}
	}
	conn, err := app.OpenClickHouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	if action == "list" {
		fmt.Fprintln(tw, "PROJECTION\tGEN\tSTATUS\tUPDATED\tREBUILD\tPROGRESS\tNOTE")
		for _, p := range projs {
			gens, err := store.Generations(ctx, conn, p.Name)
			if err != nil {
				return err
			}
			sts, err := store.RebuildStatuses(ctx, conn, p.Name)
			if err != nil {
				return err
			}
			for _, g := range gens {
				rb, prog := "-", "-"
				for _, s := range sts {
					if s.Generation == g.Generation {
						rb = s.State
						if s.Error != "" {
							rb += ": " + oneLine(s.Error, 60)
						}
						if s.Total > 0 {
							prog = fmt.Sprintf("%d/%d lag %d eta %s", s.Replayed, s.Total, s.Lag, s.ETA.Round(time.Second))
						}
						break
					}
				}
				fmt.Fprintf(tw, "%s\tg%d\t%s\t%s\t%s\t%s\t%s\n", p.Name, g.Generation, g.Status, g.UpdatedAt.Format(time.RFC3339), rb, prog, g.Note)
			}
		}
		return nil
	}
	kopts, err := app.KafkaOpts(cfg)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var errs []error
	fmt.Fprintln(tw, "PROJECTION\tGEN\tSTATUS\tACTION")
	for _, p := range projs {
		acts, err := rebuild.GC(ctx, conn, adm, p, rebuild.GCOptions{Grace: *grace, DryRun: *dry, Abandoned: *abandoned})
		for _, a := range acts {
			fmt.Fprintf(tw, "%s\tg%d\t%s\t%s\n", p.Name, a.Generation, a.Status, a.Action)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}
