// Package config is Reel's YAML configuration: one file, environment
// overrides for what differs per deployment (addresses, secrets), and a
// Validate that reports every mistake at once, each with its path.
//
//	cfg, err := config.Load("reel.yaml", os.Getenv) // parse + env overrides
//	if err != nil { … }                              // unreadable or unknown keys
//	if err := cfg.Validate(); err != nil { … }       // "clickhouse.dsn: …\nhttp.listen: …"
//
// The shape is rendered by the Helm chart into a ConfigMap; keep the YAML
// keys stable. Secrets are never in the file: they are read from the files
// the *File fields name (mounted Secrets) or from the environment.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// Config is the whole file.
type Config struct {
	Kafka          Kafka          `yaml:"kafka"`
	SchemaRegistry SchemaRegistry `yaml:"schemaRegistry"`
	Catalog        Catalog        `yaml:"catalog"`
	Projections    Projections    `yaml:"projections"`
	ClickHouse     ClickHouse     `yaml:"clickhouse"`
	Projector      Projector      `yaml:"projector"`
	HTTP           HTTP           `yaml:"http"`
	Log            Log            `yaml:"log"`

	// GoProjections are the Go projections compiled into the program
	// (cli.WithProjections), named beside the declared ones; Bindings are
	// its Go payload types (cli.WithBindings). The program sets both after
	// loading the file; the engine ships none, so a config without them
	// knows only projections.dir.
	GoProjections []*projection.Projection `yaml:"-"`
	Bindings      []schemas.Binding        `yaml:"-"`
	// ProgramCatalog is the program's own catalog (cli.WithCatalog), used
	// when catalog.dir and catalog.registry are unset. The engine ships
	// none: without it a config must name its catalog.
	ProgramCatalog fs.FS `yaml:"-"`

	// Secrets taken from the environment (never from the file). They are
	// unexported so that printing or marshaling a Config cannot leak them.
	kafkaPassword, registryPassword, clickhousePassword, adminToken string
}

// Kafka is the broker connection.
type Kafka struct {
	Brokers  []string `yaml:"brokers"`  // env REEL_KAFKA_BROKERS (comma-separated)
	ClientID string   `yaml:"clientId"` // default "reel"
	TLS      KafkaTLS `yaml:"tls"`
	SASL     SASL     `yaml:"sasl"`
}

// TLS configures a client's TLS. CAFile empty: the system roots.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"caFile"`
	InsecureSkipVerify bool   `yaml:"insecureSkipVerify"`
}

// KafkaTLS adds an optional client certificate (mutual TLS).
type KafkaTLS struct {
	TLS      `yaml:",inline"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// SASL mechanisms Reel speaks.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL is Kafka authentication. The password comes from PasswordFile or env
// REEL_KAFKA_SASL_PASSWORD (env wins).
type SASL struct {
	Mechanism    string `yaml:"mechanism"` // "" (off), PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"`
}

// SchemaRegistry is the optional Confluent-compatible registry. Empty URL:
// registry-free single-object encoding.
type SchemaRegistry struct {
	URL          string `yaml:"url"` // env REEL_SCHEMA_REGISTRY_URL
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"` // or env REEL_SCHEMA_REGISTRY_PASSWORD
}

// Catalog is where the event types come from: a directory of .avsc files
// with an optional catalog.yaml (see docs/events.md).
type Catalog struct {
	Dir string `yaml:"dir"` // env REEL_CATALOG; "": the program's catalog (cli.WithCatalog; the stock reel's is the demo's), else required
	// Registry adds the types registered under the schema registry's
	// subjects that dir does not define (every version, read at start);
	// without dir they are the whole catalog. Env REEL_CATALOG_REGISTRY.
	// Default false. Needs schemaRegistry.url.
	Registry bool `yaml:"registry"`
}

// Projections is where declared projections (YAML files, see
// docs/projections.md) come from.
type Projections struct {
	// Dir holds the projection files (*.yaml at any depth); env
	// REEL_PROJECTIONS_DIR. "": only the program's Go projections. When
	// set, projector.projections defaults to the declared ones; a declared
	// projection replaces a Go one of the same name.
	Dir string `yaml:"dir"`
}

// ClickHouse is the read-model database.
type ClickHouse struct {
	DSN          string `yaml:"dsn"` // env REEL_CLICKHOUSE_DSN; http(s):// (default http://clickhouse:8123/reel: the protocol Reel is tested on) or clickhouse:// (native, untested)
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"` // or env REEL_CLICKHOUSE_PASSWORD
	TLS          TLS    `yaml:"tls"`
	// MaxOpenConns bounds the connections to ClickHouse that every
	// projection's partition workers share (default 64; a max_open_conns
	// in the DSN wins over the default). clickhouse-go's own default of
	// 10 starves several projections of many partitions each.
	MaxOpenConns int `yaml:"maxOpenConns"`
}

// Projector tunes the runtime. Its runner settings are the runtime's own
// (projectors.Tuning, inline: projector.batchEvents, …): their defaults
// and checks are written once there, and app.RunnerOptions hands them to
// every runner whole. Every setting also has an environment variable,
// REEL_PROJECTOR_<KEY> (REEL_PROJECTOR_BATCH_EVENTS=2000; durations as
// 300ms, booleans as true/false).
type Projector struct {
	Projections []string `yaml:"projections"` // empty: every declared one (projections.dir), else every Go one; env REEL_PROJECTIONS (comma-separated)
	// GenerationPoll is how often the supervisor reads the generation
	// registry (default 5s, at least 100ms).
	GenerationPoll    time.Duration `yaml:"generationPoll"`
	projectors.Tuning `yaml:",inline"`
}

// HTTP is the operations endpoint: /metrics, /healthz, /readyz, /admin/….
type HTTP struct {
	Listen         string `yaml:"listen"`         // env REEL_HTTP_LISTEN
	AdminTokenFile string `yaml:"adminTokenFile"` // or env REEL_ADMIN_TOKEN; no token: admin endpoints off
}

// Log configures slog.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error; env REEL_LOG_LEVEL
	Format string `yaml:"format"` // json | text
}

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		Kafka:      Kafka{Brokers: []string{"kafka:9092"}, ClientID: "reel"},
		ClickHouse: ClickHouse{DSN: "http://clickhouse:8123/reel"},
		Projector:  Projector{GenerationPoll: 5 * time.Second, Tuning: projectors.DefaultTuning()},
		HTTP:       HTTP{Listen: ":9464"},
		Log:        Log{Level: "info", Format: "json"},
	}
}

// Load reads the file at path ("" : defaults only) and applies the
// environment overrides looked up through getenv (os.Getenv in main; a map
// in tests). It fails on unreadable files, bad YAML and unknown keys; all
// other mistakes are Validate's.
func Load(path string, getenv func(string) string) (*Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := c.parse(b); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

// Parse is Load for bytes already read.
func Parse(b []byte, getenv func(string) string) (*Config, error) {
	c := Default()
	if err := c.parse(b); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

func (c *Config) parse(b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (c *Config) applyEnv(getenv func(string) string) error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	list := func(v string) []string {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	if v := getenv("REEL_KAFKA_BROKERS"); v != "" {
		c.Kafka.Brokers = list(v)
	}
	if v := getenv("REEL_SCHEMA_REGISTRY_URL"); v != "" {
		c.SchemaRegistry.URL = v
	}
	if v := getenv("REEL_CATALOG"); v != "" {
		c.Catalog.Dir = v
	}
	if v := getenv("REEL_CATALOG_REGISTRY"); v != "" {
		c.Catalog.Registry = v == "1" || strings.EqualFold(v, "true")
	}
	if v := getenv("REEL_PROJECTIONS_DIR"); v != "" {
		c.Projections.Dir = v
	}
	if v := getenv("REEL_CLICKHOUSE_DSN"); v != "" {
		c.ClickHouse.DSN = v
	}
	if v := getenv("REEL_PROJECTIONS"); v != "" {
		c.Projector.Projections = list(v)
	}
	if v := getenv("REEL_DURABLE"); v != "" {
		c.Projector.Durable = v == "1" || strings.EqualFold(v, "true")
	}
	if v := getenv("REEL_HTTP_LISTEN"); v != "" {
		c.HTTP.Listen = v
	}
	if v := getenv("REEL_LOG_LEVEL"); v != "" {
		c.Log.Level = v
	}
	c.kafkaPassword = getenv("REEL_KAFKA_SASL_PASSWORD")
	c.registryPassword = getenv("REEL_SCHEMA_REGISTRY_PASSWORD")
	c.clickhousePassword = getenv("REEL_CLICKHOUSE_PASSWORD")
	c.adminToken = getenv("REEL_ADMIN_TOKEN")
	return c.applyTuningEnv(getenv)
}

// applyTuningEnv sets each runner setting from its variable
// (TuningEnv), parsed as its YAML value would be.
func (c *Config) applyTuningEnv(getenv func(string) string) error {
	v := reflect.ValueOf(&c.Projector.Tuning).Elem()
	for i := range v.NumField() {
		key := v.Type().Field(i).Tag.Get("yaml")
		env := TuningEnv(key)
		s := getenv(env)
		if s == "" {
			continue
		}
		if err := yaml.Unmarshal([]byte(s), v.Field(i).Addr().Interface()); err != nil {
			return fmt.Errorf("%s (projector.%s): %q is not a %s", env, key, s, v.Field(i).Type())
		}
	}
	return nil
}

// TuningEnv is the environment variable of the runner setting at YAML key
// projector.<key>: REEL_PROJECTOR_ and the key in upper snake case
// (batchEvents: REEL_PROJECTOR_BATCH_EVENTS).
func TuningEnv(key string) string {
	var b strings.Builder
	b.WriteString("REEL_PROJECTOR_")
	for i, r := range key {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// secret returns the env value if set, else the trimmed content of file.
func secret(env, file string) (string, error) {
	if env != "" {
		return env, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		// The error names the file, never its content.
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// KafkaPassword is the SASL password (env REEL_KAFKA_SASL_PASSWORD, else
// kafka.sasl.passwordFile).
func (c *Config) KafkaPassword() (string, error) {
	return secret(c.kafkaPassword, c.Kafka.SASL.PasswordFile)
}

// RegistryPassword is the schema registry password.
func (c *Config) RegistryPassword() (string, error) {
	return secret(c.registryPassword, c.SchemaRegistry.PasswordFile)
}

// ClickHousePassword is the ClickHouse password.
func (c *Config) ClickHousePassword() (string, error) {
	return secret(c.clickhousePassword, c.ClickHouse.PasswordFile)
}

// AdminToken is the bearer token of the admin endpoints; "" disables them.
func (c *Config) AdminToken() (string, error) {
	return secret(c.adminToken, c.HTTP.AdminTokenFile)
}
