package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/projectors/store"
)

// cmdPlan: reel plan <projection> — what the current code would do to the
// projection's generations (migrate, or refuse and need a rebuild), before
// anything runs. Exit code 3 when the live generation needs a rebuild.
func (pr *program) cmdPlan(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: reel plan <projection> -config reel.yaml", errUsage)
	}
	fs := flag.NewFlagSet("plan "+args[0], flag.ContinueOnError)
	cf := pr.clientFlags(fs)
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
	pl, err := store.PlanChanges(ctx, conn, p)
	if err != nil {
		return err
	}
	pl.Write(os.Stdout)
	if pl.Rebuild() {
		os.Exit(3)
	}
	return nil
}
