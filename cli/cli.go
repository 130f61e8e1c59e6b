// Package cli is the reel command as a library: a team builds its own
// binary, in its own module, with its Go projections compiled in beside
// the declared ones, and gets the whole CLI — dev, project, status, dlq,
// rebuild, rollback, generations, wait, schemas, projections.
//
//	func main() {
//		cli.Main(
//			cli.WithProjections(orders.Projection()),
//			cli.WithBindings(schemas.Bind[orders.Placed]("com.acme.OrderPlaced")),
//		)
//	}
//
// It is a package of its own, not the module root, because the root would
// then import the whole engine (franz-go, clickhouse-go, the runtime)
// for anyone who needs only schemas or producers; and not under cmd/,
// which holds mains. The stock binary, cmd/reel, is one such main: it
// passes the demo's projections, bindings, producers and commands.
//
// Nothing is registered globally: each Option adds a component to one
// program value, and the engine packages below (config, app, projectors)
// receive them explicitly. See docs/library.md.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// ErrUsage marks an error caused by bad arguments: Main exits with code 2.
// Commands added with WithCommand wrap it for the same.
var ErrUsage = errors.New("usage")

// errUsage is ErrUsage under the name the commands use.
var errUsage = ErrUsage

// Option configures the program Main runs.
type Option func(*program)

// WithProjections adds Go projections. They are named beside the declared
// ones of projections.dir (a declared one of the same name replaces a Go
// one) by every command: `reel project` runs them (all, or those of
// projector.projections), `reel dev` runs them when given no
// -projections, and rebuild, rollback, dlq, wait and status find them by
// name. Default: none, so only declared projections exist.
func WithProjections(ps ...*projection.Projection) Option {
	return func(pr *program) { pr.projections = append(pr.projections, ps...) }
}

// WithBindings binds Go types to event types (schemas.Bind) so that the
// Go projections get typed payloads (schemas.As); those whose type the
// loaded catalog lacks are left out. Default: none, every event decodes
// into a *schemas.Record.
func WithBindings(bs ...schemas.Binding) Option {
	return func(pr *program) { pr.bindings = append(pr.bindings, bs...) }
}

// WithCatalog sets the program's event catalog (a tree of .avsc files
// with an optional catalog.yaml, as schemas.LoadFS reads): what every
// command uses when given no catalog (catalog.dir, REEL_CATALOG, -catalog,
// -dir). Default: none, so a command that needs a catalog and is given
// none fails and says how to give one. The stock binary passes the
// demo's.
func WithCatalog(fsys fs.FS) Option {
	return func(pr *program) { pr.catalog = fsys }
}

// DevProducer is a service `reel dev` runs beside the projections when it
// runs the program's Go projections (no -projections, or -demo): it
// publishes events with codec to the embedded Kafka (kafka seeds it)
// until ctx ends. Flags, if set, adds its flags to `reel dev`'s.
type DevProducer struct {
	Name  string
	Flags func(fs *flag.FlagSet)
	Run   func(ctx context.Context, codec *schemas.Codec, kafka []kgo.Opt, log *slog.Logger) error
}

// WithDevProducer adds a producer to `reel dev`. Default: none (produce
// to the Kafka address `reel dev` prints).
func WithDevProducer(p DevProducer) Option {
	return func(pr *program) { pr.producers = append(pr.producers, p) }
}

// WithDevQuery adds a query `reel dev` prints while it runs the Go
// projections. Default: SELECT * of every view and table of the
// projections it runs.
func WithDevQuery(title, sql string) Option {
	return func(pr *program) { pr.queries = append(pr.queries, devQuery{title, sql}) }
}

// WithCommand adds a subcommand (or replaces one of the same name). run
// gets the arguments after the name; an error wrapping ErrUsage exits 2.
func WithCommand(name, summary string, run func(ctx context.Context, args []string) error) Option {
	return func(pr *program) { pr.extra[name] = command{summary, run} }
}

// WithName sets the program name of usage messages. Default "reel".
func WithName(name string) Option {
	return func(pr *program) { pr.name = name }
}

// program is the private config: what Option values set, with defaults.
type program struct {
	name        string
	projections []*projection.Projection
	bindings    []schemas.Binding
	catalog     fs.FS
	producers   []DevProducer
	queries     []devQuery
	extra       map[string]command
}

func newProgram(opts ...Option) *program {
	pr := &program{name: "reel", extra: map[string]command{}}
	for _, o := range opts {
		o(pr)
	}
	return pr
}

// configure hands the program's components to a loaded config, before
// Validate checks projection names against them.
func (pr *program) configure(c *config.Config) {
	c.GoProjections = pr.projections
	c.Bindings = pr.bindings
	c.ProgramCatalog = pr.catalog
}

// loadCatalog loads dir, else the program's catalog (WithCatalog).
func (pr *program) loadCatalog(dir string) (*schemas.Catalog, error) {
	c := config.Config{Catalog: config.Catalog{Dir: dir}, ProgramCatalog: pr.catalog}
	cat, err := c.LoadCatalog()
	if errors.Is(err, config.ErrNoCatalog) {
		return nil, fmt.Errorf("%w: no event catalog: give a directory of .avsc files (-catalog, or -dir for reel schemas)", errUsage)
	}
	return cat, err
}

// command is one subcommand; run gets the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands lists every subcommand in one place: the engine's, then those
// the program added.
func (pr *program) commands() map[string]command {
	cmds := map[string]command{
		"dev":         {"run projections on embedded Kafka and ClickHouse: produce, project, query", pr.cmdDev},
		"wait":        {"read-your-writes: wait until a projection has applied produced positions", pr.cmdWait},
		"schemas":     {"check|list|register: the event catalog and its compatibility gate", pr.cmdSchemas},
		"projections": {"check|list DIR: type-check declared projection files against the catalog (-catalog DIR)", pr.cmdProjections},
		"project":     {"run the configured projections (-config reel.yaml, -validate)", pr.cmdProject},
		"status":      {"per projection: generations, group, partitions, lag, parked count (-json)", pr.cmdStatus},
		"dlq":         {"list|show|discard|replay parked aggregates of a projection", pr.cmdDLQ},
		"rebuild":     {"<projection>: blue/green rebuild with progress, shadow compare and atomic cut-over (-in-place, -snapshot)", pr.cmdRebuild},
		"plan":        {"<projection>: what the code's definition changes in its generations: migrations, or the rebuild needed", pr.cmdPlan},
		"rollback":    {"<projection>: point the views back at the standby generation", pr.cmdRollback},
		"generations": {"list|gc: generations and rebuilds; drop generations past their grace", pr.cmdGenerations},
	}
	for n, c := range pr.extra {
		cmds[n] = c
	}
	return cmds
}

// Main runs the command named by os.Args until SIGINT or SIGTERM and
// exits: 0 on success, 2 on a usage error, 1 on any other.
func Main(opts ...Option) {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if limit, err := memoryLimit(os.Getenv); err != nil {
		slog.Warn("memory limit not set", "err", err)
	} else if limit > 0 {
		slog.Info("Go memory limit from the container's", "bytes", limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], opts...)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, ErrUsage):
		os.Exit(2)
	}
	os.Exit(1)
}

// Run runs the command args names (args excludes the program name),
// printing usage and errors to stderr. It is Main without the exit, for
// tests and programs that wrap it.
func Run(ctx context.Context, args []string, opts ...Option) error {
	pr := newProgram(opts...)
	cmds := pr.commands()
	if len(args) < 1 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		pr.usage(os.Stderr, cmds)
		return ErrUsage
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: unknown command %q\n\n", pr.name, args[0])
		pr.usage(os.Stderr, cmds)
		return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
	}
	err := c.run(ctx, args[1:])
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n", pr.name, args[0], err)
	}
	return err
}

func (pr *program) usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", pr.name)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, cmds[n].summary)
	}
}
