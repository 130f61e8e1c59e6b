package app_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// demoCatalog is a catalog for configs that name none (the engine has no
// default).
const demoCatalog = "../../examples/demo/events/catalog"

func parse(t *testing.T, y string, env map[string]string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c.ProgramCatalog = os.DirFS(demoCatalog)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKafkaSASL connects with every configured mechanism to a SASL
// listener (real Kafka in the integration suite, kfake otherwise).
func TestKafkaSASL(t *testing.T) {
	brokers := testenv.KafkaSASL(t)
	for _, mech := range []string{config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512} {
		for _, pw := range []string{testenv.SASLPassword, "wrong"} {
			c := parse(t, "kafka:\n  sasl: {mechanism: "+mech+", username: "+testenv.SASLUser+"}\n",
				map[string]string{"REEL_KAFKA_BROKERS": strings.Join(brokers, ","), "REEL_KAFKA_SASL_PASSWORD": pw})
			opts, err := app.KafkaOpts(c)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(2*time.Second), kgo.RequestRetries(1))...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err = kadm.NewClient(cl).ListBrokers(ctx)
			cancel()
			cl.Close()
			if ok := pw == testenv.SASLPassword; (err == nil) != ok {
				t.Errorf("%s with password ok=%v: err %v", mech, ok, err)
			}
			if err != nil && strings.Contains(err.Error(), pw) {
				t.Errorf("%s: the password appears in the error", mech)
			}
		}
	}
}

// TestCodecWithRegistry: a configured registry URL switches the codec to
// Confluent framing (the real registry in the integration suite).
func TestCodecWithRegistry(t *testing.T) {
	ctx := context.Background()
	cl, url := testenv.RegistryClient(t)
	cat, _ := events.Load()
	if _, err := schemas.Register(ctx, cl, cat, schemas.RegisterOptions{SetCompatibility: true}); err != nil {
		t.Fatal(err)
	}
	c := parse(t, "", map[string]string{"REEL_SCHEMA_REGISTRY_URL": url})
	codec, err := app.Codec(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := codec.Encode(ctx, schemas.NewEvent(&events.OrderPlaced{OrderID: "o-1", CustomerID: "c-1", Currency: "EUR"}))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Value[0] != 0 {
		t.Fatalf("want Confluent framing (magic 0), got %#x", rec.Value[0])
	}
	if _, err := codec.Decode(ctx, rec); err != nil {
		t.Fatal(err)
	}
	plain, err := app.Codec(ctx, parse(t, "", nil))
	if err != nil {
		t.Fatal(err)
	}
	rec, _ = plain.Encode(ctx, schemas.NewEvent(&events.OrderPlaced{OrderID: "o-1", CustomerID: "c-1", Currency: "EUR"}))
	if rec.Value[0] != 0xC3 {
		t.Fatalf("without a registry want single-object encoding, got %#x", rec.Value[0])
	}
}

// TestOpenClickHouseRedacts: a DSN password never reaches the error.
func TestOpenClickHouseRedacts(t *testing.T) {
	c := parse(t, "", map[string]string{"REEL_CLICKHOUSE_DSN": "clickhouse://u:hunter2@127.0.0.1:1/db?dial_timeout=200ms"})
	_, err := app.OpenClickHouse(context.Background(), c)
	if err == nil {
		t.Fatal("want an error for a closed port")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("password in error: %v", err)
	}
}

// TestClickHousePool: every projection's workers share one pool, 64 by
// default (clickhouse-go's 10 starved several projections), the config or
// the DSN can set it.
func TestClickHousePool(t *testing.T) {
	for _, c := range []struct {
		dsn  string
		conf int
		want int
	}{
		{"http://ch:8123/reel", 0, 64},
		{"http://ch:8123/reel", 8, 8},
		{"http://ch:8123/reel?max_open_conns=12", 0, 12},
	} {
		cfg, err := config.Parse([]byte(fmt.Sprintf("clickhouse: {dsn: %q, maxOpenConns: %d}\n", c.dsn, c.conf)), func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		opts, err := app.ClickHouseOptions(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if opts.MaxOpenConns != c.want || opts.MaxIdleConns < c.want {
			t.Errorf("%s maxOpenConns %d: pool %d open / %d idle, want %d", c.dsn, c.conf, opts.MaxOpenConns, opts.MaxIdleConns, c.want)
		}
	}
}
