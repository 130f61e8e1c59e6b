// Package app turns Reel's configuration into running parts: the Kafka
// client options, the ClickHouse connection, the event codec, the logger,
// and the Supervisor that runs every configured projection generation.
// It is the one place `reel project`, `reel status` and `reel dlq` build
// their clients, so TLS, SASL and credentials behave the same everywhere,
// and the one place a config becomes runner options (RunnerOptions), for
// the Supervisor and for the processes that run one generation with
// runners of their own (Open: the load test's projector, the tests'
// projector processes).
//
//	cfg, _ := config.Load("reel.yaml", os.Getenv)
//	conn, _ := app.OpenClickHouse(ctx, cfg)
//	codec, _ := app.Codec(ctx, cfg)
//	kopts, _ := app.KafkaOpts(cfg)
//	sup := app.NewSupervisor(cfg, conn, codec, kopts, reg, log)
//	err := sup.Run(ctx)
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// KafkaOpts returns the franz-go options for the configured brokers: seed
// brokers, client ID, TLS and SASL.
func KafkaOpts(c *config.Config) ([]kgo.Opt, error) {
	k := c.Kafka
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ClientID(k.ClientID)}
	if k.TLS.Enabled {
		tc, err := tlsConfig(k.TLS.TLS, k.TLS.CertFile, k.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if k.SASL.Mechanism != "" {
		pw, err := c.KafkaPassword()
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl.passwordFile: %w", err)
		}
		switch k.SASL.Mechanism {
		case config.SASLPlain:
			opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.Username, Pass: pw}.AsMechanism()))
		case config.SASLScramSHA256:
			opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: pw}.AsSha256Mechanism()))
		case config.SASLScramSHA512:
			opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: pw}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("kafka.sasl.mechanism: %q is not supported", k.SASL.Mechanism)
		}
	}
	return opts, nil
}

// defaultMaxOpenConns is clickhouse.maxOpenConns' default.
const defaultMaxOpenConns = 64

// ClickHouseOptions returns the clickhouse-go options of the configured
// DSN with the configured credentials, pool bound and TLS applied on top.
func ClickHouseOptions(c *config.Config) (*clickhouse.Options, error) {
	opts, err := chclient.Options(c.ClickHouse.DSN)
	if err != nil {
		return nil, err
	}
	if c.ClickHouse.Username != "" {
		opts.Auth.Username = c.ClickHouse.Username
	}
	pw, err := c.ClickHousePassword()
	if err != nil {
		return nil, fmt.Errorf("clickhouse.passwordFile: %w", err)
	}
	if pw != "" {
		opts.Auth.Password = pw
	}
	switch {
	case c.ClickHouse.MaxOpenConns > 0:
		opts.MaxOpenConns = c.ClickHouse.MaxOpenConns
	case opts.MaxOpenConns == 0:
		opts.MaxOpenConns = defaultMaxOpenConns
	}
	// Idle connections up to the bound: workers insert in bursts, and a
	// closed connection costs a new handshake at the next one.
	opts.MaxIdleConns = max(opts.MaxIdleConns, opts.MaxOpenConns)
	if c.ClickHouse.TLS.Enabled {
		tc, err := tlsConfig(c.ClickHouse.TLS, "", "")
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls: %w", err)
		}
		opts.TLS = tc
	}
	return opts, nil
}

// OpenClickHouse connects to the configured ClickHouse and pings it. Errors
// name the redacted DSN only.
func OpenClickHouse(ctx context.Context, c *config.Config) (driver.Conn, error) {
	opts, err := ClickHouseOptions(c)
	if err != nil {
		return nil, err
	}
	// Batches go through a pool of their own, which keeps few idle
	// connections: each keeps a buffer the size of its largest batch.
	conn, err := chclient.OpenSplit(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", chclient.Redact(c.ClickHouse.DSN), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ClickHouse not reachable at %s: %w", chclient.Redact(c.ClickHouse.DSN), err)
	}
	return conn, nil
}

// Catalog loads the configured catalog (catalog.dir / REEL_CATALOG), else
// the program's (config.Config.ProgramCatalog), else fails
// (config.ErrNoCatalog).
func Catalog(c *config.Config) (*schemas.Catalog, error) {
	return c.LoadCatalog()
}

// Codec builds the event codec for the configured catalog: Confluent
// framing through the configured schema registry, or registry-free
// single-object encoding without one. The program's Go bindings
// (config.Bindings) are bound for the types the catalog has; every other
// type decodes into a *schemas.Record.
func Codec(_ context.Context, c *config.Config) (*schemas.Codec, error) {
	cat, err := Catalog(c)
	if err != nil {
		return nil, err
	}
	bind := schemas.WithBindings(BindingsFor(cat, c.Bindings)...)
	if c.SchemaRegistry.URL == "" {
		return schemas.NewCodec(cat, bind)
	}
	cl, err := c.RegistryClient()
	if err != nil {
		return nil, err
	}
	return schemas.NewCodec(cat, schemas.WithRegistry(cl), bind)
}

// Parts are what a process that runs cfg's projections opens (Open).
type Parts struct {
	Conn        driver.Conn
	Codec       *schemas.Codec
	Kafka       []kgo.Opt                // KafkaOpts
	Projections []*projection.Projection // config.SelectProjections
}

// Open opens cfg's ClickHouse, codec and Kafka client options and selects
// its projections, for the processes that run one generation of them
// with runners of their own (the load test's projector, the tests'
// projector processes; each runner's options from RunnerOptions). The
// caller closes Conn.
func Open(ctx context.Context, cfg *config.Config) (*Parts, error) {
	cat, err := cfg.LoadCatalog()
	if err != nil {
		return nil, err
	}
	projs, err := cfg.SelectProjections(cat)
	if err != nil {
		return nil, err
	}
	codec, err := Codec(ctx, cfg)
	if err != nil {
		return nil, err
	}
	kopts, err := KafkaOpts(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := OpenClickHouse(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Parts{Conn: conn, Codec: codec, Kafka: kopts, Projections: projs}, nil
}

// BindingsFor returns those of bs whose type cat has: a program's bindings
// stay valid when it runs against a catalog without some of its types.
func BindingsFor(cat *schemas.Catalog, bs []schemas.Binding) []schemas.Binding {
	var out []schemas.Binding
	for _, b := range bs {
		if cat.Type(b.Type) != nil {
			out = append(out, b)
		}
	}
	return out
}

// Logger returns the configured slog logger writing to w.
func Logger(c *config.Config, w io.Writer) *slog.Logger {
	lvl, err := config.ParseLevel(c.Log.Level)
	if err != nil {
		lvl = slog.LevelInfo
	}
	o := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}

func tlsConfig(t config.TLS, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in by the operator
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
