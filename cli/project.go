package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/internal/httpapi"
	"github.com/reel-dev/reel/internal/retry"
)

// cmdProject runs the configured projections until SIGTERM:
//
//	reel project -config reel.yaml            # run
//	reel project -config reel.yaml -validate  # print every config error, exit 1 if any
func (pr *program) cmdProject(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("project", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file (env overrides apply; see internal/config)")
	validate := fs.Bool("validate", false, "validate the config, print every error and exit")
	if err := fs.Parse(args); err != nil {
		return errors.Join(errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	cfg, err := pr.loadConfig(*path, os.Stderr)
	if err != nil {
		return err
	}
	if *validate {
		fmt.Println("config OK")
		return nil
	}
	return runProject(ctx, cfg, os.Stderr, nil)
}

// loadConfig loads and validates the config, printing every validation
// error on its own line to w.
func (pr *program) loadConfig(path string, w io.Writer) (*config.Config, error) {
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		return nil, err
	}
	pr.configure(cfg)
	if err := cfg.Validate(); err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(w, e)
			}
			return nil, fmt.Errorf("config has %d error(s)", len(es))
		}
		return nil, err
	}
	return cfg, nil
}

// runProject is `reel project` after the config is valid. listening, if
// not nil, gets the HTTP address once it is bound (tests listen on :0).
func runProject(ctx context.Context, cfg *config.Config, logw io.Writer, listening func(addr string)) error {
	log := app.Logger(cfg, logw)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	token, err := cfg.AdminToken()
	if err != nil {
		return fmt.Errorf("http.adminTokenFile: %w", err)
	}
	kopts, err := app.KafkaOpts(cfg)
	if err != nil {
		return err
	}
	codec, err := app.Codec(ctx, cfg)
	if err != nil {
		return err
	}
	log.Info("reel project starting",
		"clickhouse", chclient.Redact(cfg.ClickHouse.DSN), "brokers", cfg.Kafka.Brokers,
		"schema_registry", cfg.SchemaRegistry.URL != "", "projections", cfg.Projector.Projections,
		"admin_endpoints", token != "", "http", cfg.HTTP.Listen)

	// Serve /healthz and /metrics before ClickHouse answers, so a slow
	// database shows as "not ready", not as a crash loop.
	var sup *app.Supervisor
	supReady := make(chan struct{})
	ready := func(ctx context.Context) error {
		select {
		case <-supReady:
			return sup.Ready(ctx)
		default:
			return errors.New("waiting for ClickHouse")
		}
	}
	var admin lateAdmin
	admin.ready = supReady
	h := httpapi.Handler(httpapi.Options{Gatherer: reg, Ready: ready, Admin: &admin, Token: token, Log: log})
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server failed", "err", err)
		}
	}()
	if listening != nil {
		listening(ln.Addr().String())
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-srvDone
	}()

	conn, err := openClickHouseRetrying(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	sup, err = app.NewSupervisor(cfg, conn, codec, kopts, reg, log)
	if err != nil {
		return err
	}
	admin.sup = sup
	close(supReady)
	err = sup.Run(ctx)
	log.Info("reel project stopped")
	return err
}

// lateAdmin forwards to the supervisor once it exists.
type lateAdmin struct {
	ready <-chan struct{}
	sup   *app.Supervisor
}

func (a *lateAdmin) wait() error {
	select {
	case <-a.ready:
		return nil
	default:
		return httpapi.Errorf(http.StatusServiceUnavailable, "projectors not started yet (waiting for ClickHouse)")
	}
}

func (a *lateAdmin) ReplayParked(ctx context.Context, projection string, gen int, aggregate string) (any, error) {
	if err := a.wait(); err != nil {
		return nil, err
	}
	return a.sup.ReplayParked(ctx, projection, gen, aggregate)
}

func (a *lateAdmin) DiscardParked(ctx context.Context, projection string, gen int, aggregate string) (any, error) {
	if err := a.wait(); err != nil {
		return nil, err
	}
	return a.sup.DiscardParked(ctx, projection, gen, aggregate)
}

// openClickHouseRetrying connects with capped exponential backoff until
// ClickHouse answers or ctx ends.
func openClickHouseRetrying(ctx context.Context, cfg *config.Config, log *slog.Logger) (driver.Conn, error) {
	var conn driver.Conn
	pol := retry.New(cfg.Projector.RetryMin, cfg.Projector.RetryMax, nil)
	err := pol.Do(ctx, "connect", func(ctx context.Context) error {
		c, err := app.OpenClickHouse(ctx, cfg)
		conn = c
		return err
	}, func(attempt int, err error) {
		log.Warn("ClickHouse not reachable; retrying", "attempt", attempt+1, "err", err)
	})
	return conn, err
}
