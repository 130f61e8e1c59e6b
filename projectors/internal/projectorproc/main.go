// Command projectorproc runs projection Runners in one process, for the
// exactly-once tests that SIGKILL projector processes. It is test plumbing,
// not a product command (that is `reel project`): the runtime runs as-is,
// configured from flags.
//
//	projectorproc -brokers 127.0.0.1:9092 -dsn http://127.0.0.1:8123/db \
//	    -projections orders,order_saga,sales,seats,event_log -batch 2000 -flush 300ms
//
// SIGTERM or SIGINT stops it gracefully (in-flight batches are flushed).
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

	"github.com/reel-dev/reel/examples/demo/projectors/registry"
	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "projectorproc:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		brokers     = flag.String("brokers", "", "Kafka seed brokers, comma separated (required)")
		dsn         = flag.String("dsn", "", "ClickHouse DSN (required)")
		names       = flag.String("projections", "", "projections to run, comma separated (required)")
		gen         = flag.Int("generation", 1, "generation to run")
		batch       = flag.Int("batch", 5000, "events per batch")
		flush       = flag.Duration("flush", 200*time.Millisecond, "flush interval")
		retryMin    = flag.Duration("retry-min", 100*time.Millisecond, "ClickHouse retry backoff, first step")
		retryMax    = flag.Duration("retry-max", 2*time.Second, "ClickHouse retry backoff, cap")
		session     = flag.Duration("session-timeout", 6*time.Second, "Kafka group session timeout")
		topicSuffix = flag.String("topic-suffix", "", "appended to every topic the projections read (test isolation)")
		groupSuffix = flag.String("group-suffix", "", "appended to every consumer group (test isolation)")
		id          = flag.String("id", "", "client ID and log tag")
		declared    = flag.String("declared", "", "directory of declared projections; a name found there runs the declared one")
	)
	flag.Parse()
	if *brokers == "" || *dsn == "" || *names == "" {
		flag.Usage()
		return fmt.Errorf("-brokers, -dsn and -projections are required")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("proc", *id)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	conn, err := chclient.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	cat, err := schemas.Load()
	if err != nil {
		return err
	}
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(schemas.DemoBindings()...))
	if err != nil {
		return err
	}

	var decl []*projection.Projection
	if *declared != "" {
		if decl, err = declare.LoadDir(*declared, cat); err != nil {
			return err
		}
	}
	var runners []*projectors.Runner
	for _, name := range strings.Split(*names, ",") {
		name = strings.TrimSpace(name)
		var p *projection.Projection
		for _, d := range decl {
			if d.Name == name {
				p = d
			}
		}
		if p == nil {
			if p, err = registry.Get(name); err != nil {
				return err
			}
		}
		for i := range p.Topics {
			p.Topics[i] += *topicSuffix
		}
		r, err := projectors.NewRunner(p, conn, codec,
			projectors.Brokers(strings.Split(*brokers, ",")...),
			projectors.Generation(*gen),
			projectors.BatchEvents(*batch),
			projectors.FlushInterval(*flush),
			projectors.RetryBackoff(*retryMin, *retryMax),
			projectors.Logger(log),
			projectors.KafkaOpts(
				kgo.ClientID("projectorproc-"+*id),
				kgo.ConsumerGroup(store.Group(p.Name, *gen)+*groupSuffix),
				kgo.SessionTimeout(*session),
				kgo.HeartbeatInterval(*session/6),
			))
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
	log.Info("projectorproc running", "projections", *names, "pid", os.Getpid())
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	log.Info("projectorproc stopped")
	return nil
}
