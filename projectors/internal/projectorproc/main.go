// Command projectorproc runs projection Runners in one process, for the
// exactly-once tests that SIGKILL or freeze projector processes. It is
// test plumbing, not a product command (that is `reel project`), but it
// goes through the same composition root: its flags fill a config.Config
// (the demo's catalog, Go projections and bindings as the program's, like
// the stock binary), which is validated, opened (app.Open: ClickHouse,
// codec, Kafka options, the selected projections) and turned into runner
// options by app.RunnerOptions. Only the test isolation (topic and group
// suffixes, session timeout, client ID) is its own.
//
//	projectorproc -brokers 127.0.0.1:9092 -dsn http://127.0.0.1:8123/db \
//	    -projections orders,order_saga,sales,seats,event_log -batch 2000 -flush 300ms
//
// Every runner setting can also be given as REEL_PROJECTOR_<KEY>, as for
// `reel project`. SIGTERM or SIGINT stops it gracefully (in-flight batches
// are flushed).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/registry"
	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/store"
)

// handledLine is printed once SIGTERM stops the process gracefully.
const handledLine = "projectorproc: signals handled"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "projectorproc:", err)
		os.Exit(1)
	}
}

func run() error {
	// First: the tests stop processes with SIGTERM at any moment, also while
	// they load and validate their config (the catalog takes a while on a
	// busy machine); a stop before the runners start is a clean exit.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintln(os.Stderr, handledLine) // the tests' cue: a SIGTERM now is a graceful stop

	cfg, err := config.Load("", os.Getenv)
	if err != nil {
		return err
	}
	p := &cfg.Projector
	var brokers, names string
	flag.StringVar(&brokers, "brokers", "", "Kafka seed brokers, comma separated (required; kafka.brokers)")
	flag.StringVar(&cfg.ClickHouse.DSN, "dsn", "", "ClickHouse DSN (required; clickhouse.dsn)")
	flag.StringVar(&names, "projections", "", "projections to run, comma separated (required; projector.projections)")
	flag.StringVar(&cfg.Projections.Dir, "declared", "", "directory of declared projections; a name found there runs the declared one (projections.dir)")
	flag.IntVar(&p.BatchEvents, "batch", p.BatchEvents, "events per batch (projector.batchEvents)")
	flag.DurationVar(&p.FlushInterval, "flush", p.FlushInterval, "flush interval (projector.flushInterval)")
	flag.DurationVar(&p.RetryMin, "retry-min", p.RetryMin, "ClickHouse retry backoff, first step (projector.retryMin)")
	flag.DurationVar(&p.RetryMax, "retry-max", 2*time.Second, "ClickHouse retry backoff, cap (projector.retryMax)")
	flag.DurationVar(&p.FenceCheckInterval, "fence-check", p.FenceCheckInterval, "fence check interval (projector.fenceCheckInterval)")
	gen := flag.Int("generation", 1, "generation to run")
	session := flag.Duration("session-timeout", 6*time.Second, "Kafka group session timeout")
	topicSuffix := flag.String("topic-suffix", "", "appended to every topic the projections read (test isolation)")
	groupSuffix := flag.String("group-suffix", "", "appended to every consumer group (test isolation)")
	id := flag.String("id", "", "client ID and log tag")
	flag.Parse()
	if brokers == "" || cfg.ClickHouse.DSN == "" || names == "" {
		flag.Usage()
		return fmt.Errorf("-brokers, -dsn and -projections are required")
	}
	cfg.Kafka.Brokers = strings.Split(brokers, ",")
	cfg.Kafka.ClientID = "projectorproc-" + *id
	p.Projections = strings.Split(names, ",")
	// The program's parts, as the stock binary passes them (cmd/reel).
	cfg.ProgramCatalog, cfg.GoProjections, cfg.Bindings = events.FS(), registry.All(), events.Bindings()
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("proc", *id)

	parts, err := app.Open(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	defer parts.Conn.Close()
	var runners []*projectors.Runner
	for _, pr := range parts.Projections {
		for i := range pr.Topics {
			pr.Topics[i] += *topicSuffix
		}
		ko := append(parts.Kafka[:len(parts.Kafka):len(parts.Kafka)],
			kgo.ConsumerGroup(store.Group(pr.Name, *gen)+*groupSuffix),
			kgo.SessionTimeout(*session),
			kgo.HeartbeatInterval(*session/6))
		r, err := projectors.NewRunner(pr, parts.Conn, parts.Codec, app.RunnerOptions(cfg, *gen, ko, log, nil)...)
		if err != nil {
			return err
		}
		runners = append(runners, r)
	}

	errs := make(chan error, len(runners))
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", r.Layout().Projection.Name, err)
				stop()
			}
		}()
	}
	log.Info("projectorproc running", "projections", names, "pid", os.Getpid())
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	log.Info("projectorproc stopped")
	return nil
}
