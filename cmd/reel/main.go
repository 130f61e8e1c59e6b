// Command reel runs Reel: projectors, rebuilds, the schema gate, demo
// producers and the embedded development stack.
//
//	reel dev                   # everything embedded: produce, project, query
//	reel schemas check         # FULL_TRANSITIVE compatibility gate
//	reel produce shop          # run a demo service
//	reel project -config reel.yaml
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand; run gets the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands lists every subcommand in one place.
func commands() map[string]command {
	return map[string]command{
		"dev":         {"run the demo on embedded Kafka and ClickHouse: produce, project, query", cmdDev},
		"wait":        {"read-your-writes: wait until a projection has applied produced positions", cmdWait},
		"schemas":     {"check|list|register: the event catalog and its compatibility gate", cmdSchemas},
		"produce":     {"seats|shop: run a demo service that publishes events", cmdProduce},
		"projections": {"check|list DIR: type-check declared projection files against the catalog (-catalog DIR)", cmdProjections},
		"project":     {"run the configured projections (-config reel.yaml, -validate)", cmdProject},
		"loadtest":    {"measure throughput, freshness, replay, cut-over against raw limits and a peer", cmdLoadtest},
		"status":      {"per projection: generations, group, partitions, lag, parked count (-json)", cmdStatus},
		"dlq":         {"list|show|discard|replay parked aggregates of a projection", cmdDLQ},
		"rebuild":     {"<projection>: blue/green rebuild with progress, shadow compare and atomic cut-over (-in-place, -snapshot)", cmdRebuild},
		"plan":        {"<projection>: what the code's definition changes in its generations: migrations, or the rebuild needed", cmdPlan},
		"rollback":    {"<projection>: point the views back at the standby generation", cmdRollback},
		"generations": {"list|gc: generations and rebuilds; drop generations past their grace", cmdGenerations},
	}
}

// errUsage marks an error caused by bad arguments (exit code 2).
var errUsage = errors.New("usage")

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	cmds := commands()
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(cmds)
		os.Exit(2)
	}
	c, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "reel: unknown command %q\n\n", os.Args[1])
		usage(cmds)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "reel %s: %v\n", os.Args[1], err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func usage(cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: reel <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, cmds[n].summary)
	}
}
