package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/rebuild"
)

// cmdRebuild: reel rebuild <projection> -config reel.yaml [flags] — a
// blue/green rebuild of one projection (see projectors/rebuild).
//
//	reel rebuild orders -config reel.yaml
//	reel rebuild orders -config reel.yaml -from 2026-11-01T00:00:00Z -cutover manual
//	reel rebuild seats -snapshot -max-lag 500
//	reel rebuild seats -in-place          # downtime: stop `reel project` for it first
//
// Killing it and starting it again resumes the same building generation.
func (pr *program) cmdRebuild(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: reel rebuild <projection> -config reel.yaml [-from earliest|<RFC3339>|offsets:<topic>:<p>=<o>,…] [-snapshot] [-in-place] [-cutover auto|manual]", errUsage)
	}
	fs := flag.NewFlagSet("rebuild "+args[0], flag.ContinueOnError)
	cf := pr.clientFlags(fs)
	from := fs.String("from", "earliest", "where the replay starts: earliest, an RFC 3339 timestamp, or offsets:<topic>:<p>=<o>,…[;<topic>:…]")
	snapshot := fs.Bool("snapshot", false, "start from a copy of the live generation's tables and replay only the tail")
	inPlace := fs.Bool("in-place", false, "DOWNTIME: truncate and replay the live generation itself (its projectors must be stopped)")
	cutover := fs.String("cutover", "auto", "auto: switch the views once caught up and compared; manual: stop there (run again with -cutover auto)")
	force := fs.Bool("force", false, "cut over even if the shadow comparison finds differences")
	partial := fs.Bool("partial-state", false, "allow -from after the beginning for a projection with a State table (aggregates lose their earlier state)")
	expect := fs.String("expect-changes", "", "comma-separated tables the change is meant to change: their differences in the shadow comparison are reported and accepted")
	maxLag := fs.Int64("max-lag", 1000, "compare and cut over when the new generation is at most this many offsets behind")
	grace := fs.Duration("grace", 24*time.Hour, "keep the replaced generation this long for `reel rollback`")
	batch := fs.Int("batch", 20000, "events per insert batch during the replay")
	maxConc := fs.Int("max-concurrent", 2, "refuse when this many rebuilds already run")
	progress := fs.Bool("progress", true, "show progress on stderr (a bar on a terminal, lines otherwise)")
	metricsAddr := fs.String("metrics-listen", "", "serve /metrics (reel_rebuild_*) on this address, e.g. :9465")
	handover := fs.Duration("handover", 30*time.Second, "after cut-over, keep replaying until `reel project` joins the new generation, at most this long")
	if err := fs.Parse(args[1:]); err != nil {
		return errors.Join(errUsage, err)
	}
	f, err := rebuild.ParseFrom(*from)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *cutover != "auto" && *cutover != "manual" {
		return fmt.Errorf("%w: -cutover %q: auto or manual", errUsage, *cutover)
	}
	cfg, p, err := cf.loadProjection(args[0])
	if err != nil {
		return err
	}
	log := app.Logger(cfg, os.Stderr)
	conn, err := app.OpenClickHouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	codec, err := app.Codec(ctx, cfg)
	if err != nil {
		return err
	}
	kopts, err := app.KafkaOpts(cfg)
	if err != nil {
		return err
	}
	opts := []rebuild.Opt{
		rebuild.Brokers(cfg.Kafka.Brokers...), rebuild.KafkaOpts(kopts...), rebuild.StartFrom(f),
		rebuild.AutoCutover(*cutover == "auto"), rebuild.MaxLag(*maxLag), rebuild.Grace(*grace),
		rebuild.BatchEvents(*batch), rebuild.MaxConcurrent(*maxConc), rebuild.Handover(*handover), rebuild.Logger(log),
	}
	if *snapshot {
		opts = append(opts, rebuild.WithSnapshot())
	}
	if *inPlace {
		opts = append(opts, rebuild.InPlace())
	}
	if *partial {
		opts = append(opts, rebuild.PartialState())
	}
	if *expect != "" {
		opts = append(opts, rebuild.ExpectChanges(strings.Split(*expect, ",")...))
	}
	if *force {
		opts = append(opts, rebuild.Force())
	}
	if *progress {
		opts = append(opts, rebuild.WithReporter(rebuild.Reporter{W: os.Stderr, TTY: isTerminal(os.Stderr)}))
	}
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		opts = append(opts, rebuild.WithMetrics(rebuild.NewMetrics(reg)))
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("-metrics-listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	res, err := rebuild.Run(ctx, conn, codec, p, opts...)
	if res.Comparison != nil {
		fmt.Printf("shadow compare g%d (live) vs g%d at %v:\n", res.Comparison.A, res.Comparison.B, res.Comparison.Positions)
		for _, t := range res.Comparison.Tables {
			fmt.Println("  " + t.String())
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (generation %d stays building; run the same command again to resume)", err, res.Generation)
		}
		return err
	}
	switch {
	case res.CutOver:
		fmt.Printf("%s: g%d is live (replaced g%d, kept for %s; `reel rollback %s` switches back). Replay %.0f offsets/s, view switch %s.\n",
			p.Name, res.Generation, res.Replaces, *grace, p.Name, res.ReplayRate(), res.ViewSwitch.Round(time.Millisecond))
	case res.Mode == "in-place":
		fmt.Printf("%s: g%d rebuilt in place (%.0f offsets/s); start its projectors again.\n", p.Name, res.Generation, res.ReplayRate())
	default:
		fmt.Printf("%s: g%d caught up and compared; cut over with `reel rebuild %s -cutover auto`.\n", p.Name, res.Generation, p.Name)
	}
	return nil
}

// clientFlagSet holds -config and the connection overrides every
// generation command takes.
type clientFlagSet struct {
	pr                        *program
	path, brokers, clickhouse *string
}

func (pr *program) clientFlags(fs *flag.FlagSet) clientFlagSet {
	return clientFlagSet{
		pr:         pr,
		path:       fs.String("config", "", "YAML config file (env overrides apply)"),
		brokers:    fs.String("brokers", "", "Kafka brokers, comma separated (overrides the config and REEL_KAFKA_BROKERS)"),
		clickhouse: fs.String("clickhouse", "", "ClickHouse DSN (overrides the config and REEL_CLICKHOUSE_DSN)"),
	}
}

// loadProjection loads the config and finds the projection a command is
// about (an unknown name is a usage error).
func (c clientFlagSet) loadProjection(name string) (*config.Config, *projection.Projection, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, nil, err
	}
	p, err := cfg.Projection(name)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cfg, p, nil
}

func (c clientFlagSet) load() (*config.Config, error) {
	getenv := func(k string) string {
		switch {
		case k == "REEL_KAFKA_BROKERS" && *c.brokers != "":
			return *c.brokers
		case k == "REEL_CLICKHOUSE_DSN" && *c.clickhouse != "":
			return *c.clickhouse
		}
		return os.Getenv(k)
	}
	cfg, err := config.Load(*c.path, getenv)
	if err != nil {
		return nil, err
	}
	c.pr.configure(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
