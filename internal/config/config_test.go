package config_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors/projection"
)

// withGo gives c the Go projections a program would compile in: names
// only, which is all Validate looks at.
func withGo(c *config.Config, names ...string) *config.Config {
	for _, n := range names {
		c.GoProjections = append(c.GoProjections, &projection.Projection{Name: n})
	}
	return c
}

// parse is config.Parse with the demo's catalog as the program's (the
// engine has none; a program passes its own, cli.WithCatalog).
func parse(b []byte, getenv func(string) string) (*config.Config, error) {
	c, err := config.Parse(b, getenv)
	if c != nil {
		c.ProgramCatalog = os.DirFS("../../examples/demo/events/catalog")
	}
	return c, err
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

const full = `
kafka:
  brokers: ["k1:9092", "k2:9092"]
  clientId: reel-test
  tls: {enabled: false, caFile: "", certFile: "", keyFile: "", insecureSkipVerify: false}
  sasl: {mechanism: "", username: "", passwordFile: ""}
schemaRegistry:
  url: ""
  username: ""
  passwordFile: ""
clickhouse:
  dsn: "clickhouse://clickhouse:9000/reel"
  username: ""
  passwordFile: ""
  tls: {enabled: false, caFile: "", insecureSkipVerify: false}
projector:
  projections: [orders, seats]
  batchEvents: 100
  flushInterval: 50ms
  insertTimeout: 5s
  retryMin: 10ms
  retryMax: 1s
  stateCacheSize: 1000
  stateCacheBytes: 65536
  maxPendingBytes: 1048576
  batchBytes: 2097152
  generationPoll: 2s
  durable: true
http:
  listen: ":9464"
  adminTokenFile: ""
log:
  level: debug
  format: json
`

func TestParseFullShape(t *testing.T) {
	c, err := parse([]byte(full), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `unknown projection "orders" (none: set projections.dir`) {
		t.Fatalf("projections named without any loaded: %v", err)
	}
	if err := withGo(c, "orders", "seats").Validate(); err != nil {
		t.Fatalf("the documented shape must validate: %v", err)
	}
	if !reflect.DeepEqual(c.Kafka.Brokers, []string{"k1:9092", "k2:9092"}) || c.Kafka.ClientID != "reel-test" {
		t.Fatalf("kafka: %+v", c.Kafka)
	}
	p := c.Projector
	if p.BatchEvents != 100 || p.FlushInterval != 50*time.Millisecond || p.GenerationPoll != 2*time.Second || p.RetryMax != time.Second || !p.Durable ||
		p.StateCacheSize != 1000 || p.StateCacheBytes != 65536 || p.MaxPendingBytes != 1<<20 || p.BatchBytes != 2<<20 {
		t.Fatalf("projector: %+v", p)
	}
	if c.Log.Level != "debug" {
		t.Fatalf("log: %+v", c.Log)
	}
}

func TestDefaultsValidate(t *testing.T) {
	c, err := parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Projector.BatchEvents != 5000 || c.HTTP.Listen != ":9464" || c.ClickHouse.DSN != "http://clickhouse:8123/reel" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	_, err := parse([]byte("kafka:\n  brokerz: [x:1]\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "brokerz") {
		t.Fatalf("want an error naming the unknown key, got %v", err)
	}
	_, err = parse([]byte("clickhouse:\n  tls: {certFile: x}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "certFile") {
		t.Fatalf("clickhouse.tls has no client certificate; want an error, got %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := full + "" // file values first
	y = strings.Replace(y, `adminTokenFile: ""`, `adminTokenFile: "`+tokFile+`"`, 1)
	c, err := parse([]byte(y), env(map[string]string{
		"REEL_KAFKA_BROKERS":       "a:1, b:2",
		"REEL_SCHEMA_REGISTRY_URL": "http://sr:8081",
		"REEL_CLICKHOUSE_DSN":      "http://ch:8123/db",
		"REEL_PROJECTIONS":         "sales",
		"REEL_HTTP_LISTEN":         "127.0.0.1:1",
		"REEL_LOG_LEVEL":           "warn",
		"REEL_CLICKHOUSE_PASSWORD": "chpw",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := withGo(c, "sales").Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Kafka.Brokers, []string{"a:1", "b:2"}) || c.SchemaRegistry.URL != "http://sr:8081" ||
		c.ClickHouse.DSN != "http://ch:8123/db" || !reflect.DeepEqual(c.Projector.Projections, []string{"sales"}) ||
		c.HTTP.Listen != "127.0.0.1:1" || c.Log.Level != "warn" {
		t.Fatalf("env overrides not applied: %+v", c)
	}
	if pw, _ := c.ClickHousePassword(); pw != "chpw" {
		t.Fatalf("clickhouse password %q", pw)
	}
	if tok, _ := c.AdminToken(); tok != "from-file" {
		t.Fatalf("admin token from file: %q", tok)
	}
	c2, _ := parse([]byte(y), env(map[string]string{"REEL_ADMIN_TOKEN": "from-env"}))
	if tok, _ := c2.AdminToken(); tok != "from-env" {
		t.Fatalf("env token must win over the file: %q", tok)
	}
}

func TestValidateListsEveryError(t *testing.T) {
	y := `
kafka:
  brokers: ["nohostport"]
  clientId: ""
  sasl: {mechanism: "GSSAPI"}
schemaRegistry:
  url: "ftp://sr"
clickhouse:
  dsn: "mysql://u:hunter2@db:3306/x"
  tls: {caFile: /nonexistent/ca.pem}
projector:
  projections: [orders, nope, orders]
  batchEvents: 0
  stateCacheBytes: 100
  maxPendingBytes: -1
  batchBytes: 1
  retryMin: 2s
  retryMax: 1s
  generationPoll: 1ms
http:
  listen: "9464"
log:
  level: loud
  format: xml
`
	c, err := parse([]byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("want config.Errors, got %v", err)
	}
	paths := map[string]bool{}
	for _, e := range es {
		paths[e.Path] = true
	}
	for _, want := range []string{
		"kafka.brokers[0]", "kafka.clientId", "kafka.sasl.mechanism", "schemaRegistry.url", "clickhouse.dsn",
		"clickhouse.tls.enabled", "clickhouse.tls.caFile", "projector.projections[1]", "projector.projections[2]",
		"projector.batchEvents", "projector.stateCacheBytes", "projector.maxPendingBytes", "projector.batchBytes", "projector.retryMax", "projector.generationPoll", "http.listen", "log.level", "log.format",
	} {
		if !paths[want] {
			t.Errorf("no error for %s", want)
		}
	}
	msg := err.Error()
	if strings.Contains(msg, "hunter2") {
		t.Fatalf("a password leaked into the validation errors:\n%s", msg)
	}
	if !strings.Contains(msg, "clickhouse.dsn: ") {
		t.Fatalf("errors must be prefixed with their path:\n%s", msg)
	}
	t.Logf("%d errors:\n%s", len(es), msg)
}

func TestSASLNeedsCredentials(t *testing.T) {
	c, _ := parse([]byte("kafka:\n  sasl: {mechanism: SCRAM-SHA-512}\n"), nil)
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "kafka.sasl.username") || !strings.Contains(err.Error(), "kafka.sasl.passwordFile") {
		t.Fatalf("want username and password errors, got %v", err)
	}
	c, _ = parse([]byte("kafka:\n  sasl: {mechanism: PLAIN, username: u}\n"), env(map[string]string{"REEL_KAFKA_SASL_PASSWORD": "p"}))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if pw, _ := c.KafkaPassword(); pw != "p" {
		t.Fatalf("password %q", pw)
	}
}

// catalog.dir (or REEL_CATALOG) is loaded by Validate: a broken catalog is
// reported at its path with what is wrong.
func TestCatalogDir(t *testing.T) {
	c, err := parse([]byte("catalog:\n  dir: /nowhere\n"), env(map[string]string{"REEL_CATALOG": "../../schemas/testdata/acme"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Catalog.Dir != "../../schemas/testdata/acme" {
		t.Fatalf("REEL_CATALOG did not override: %q", c.Catalog.Dir)
	}
	if err := c.Validate(); err != nil && strings.Contains(err.Error(), "catalog.dir") {
		t.Fatalf("valid catalog refused: %v", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "A.v2.avsc"), []byte(`{"type":"record","name":"A","fields":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = parse([]byte("catalog:\n  dir: "+bad+"\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "catalog.dir: ") || !strings.Contains(err.Error(), "found v2 where v1 belongs") {
		t.Fatalf("broken catalog: %v", err)
	}
}

// TestCatalogRegistry: catalog.registry adds the registry's types to
// catalog.dir's; it needs schemaRegistry.url.
func TestCatalogRegistry(t *testing.T) {
	c, err := parse([]byte("catalog:\n  registry: true\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "catalog.registry: needs schemaRegistry.url") {
		t.Fatalf("registry catalog without a registry: %v", err)
	}
	cl, url := testenv.RegistryClient(t)
	schema := `{"type":"record","name":"Refunded","namespace":"com.acme.billing","fields":[{"name":"id","type":"string"}]}`
	if _, err := cl.CreateSchema(context.Background(), "billing-com.acme.billing.Refunded", sr.Schema{Schema: schema, Type: sr.TypeAvro}); err != nil {
		t.Fatal(err)
	}
	c, err = parse([]byte("catalog:\n  dir: ../../schemas/testdata/acme\n"), env(map[string]string{
		"REEL_CATALOG_REGISTRY": "true", "REEL_SCHEMA_REGISTRY_URL": url}))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := c.LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if cat.Type("com.acme.billing.Refunded") == nil || cat.Type("com.acme.orders.OrderPlaced") == nil {
		t.Errorf("catalog %v: want the directory's types and the registry's com.acme.billing.Refunded", cat.EventTypes())
	}
}

func TestDurableDefaultOffEnvOn(t *testing.T) {
	c, err := parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Projector.Durable {
		t.Fatal("durable mode must be opt-in")
	}
	c, err = parse(nil, env(map[string]string{"REEL_DURABLE": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Projector.Durable {
		t.Fatal("REEL_DURABLE=1 did not turn durable mode on")
	}
}
