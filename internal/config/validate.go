package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// FieldError is one mistake at a path of the file ("clickhouse.dsn").
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// Errors is every mistake Validate found, in file order.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Validate checks the whole configuration and returns Errors listing every
// mistake (nil when none), so an operator fixes the file in one round.
// It reads the secret files it names (to report unreadable ones) but never
// puts their content in an error.
func (c *Config) Validate() error {
	var es Errors
	add := func(path, format string, args ...any) {
		es = append(es, FieldError{path, fmt.Sprintf(format, args...)})
	}
	file := func(path, name string) {
		if name == "" {
			return
		}
		if _, err := os.Stat(name); err != nil {
			add(path, "cannot read %s: %v", name, errText(err))
		}
	}

	// kafka
	if len(c.Kafka.Brokers) == 0 {
		add("kafka.brokers", "at least one broker (host:port) is required")
	}
	for i, b := range c.Kafka.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			add(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if strings.TrimSpace(c.Kafka.ClientID) == "" {
		add("kafka.clientId", "must not be empty")
	}
	c.Kafka.TLS.check("kafka.tls", add, file)
	if !c.Kafka.TLS.Enabled && (c.Kafka.TLS.CertFile != "" || c.Kafka.TLS.KeyFile != "") {
		add("kafka.tls.enabled", "a client certificate is given but enabled is false")
	}
	file("kafka.tls.certFile", c.Kafka.TLS.CertFile)
	file("kafka.tls.keyFile", c.Kafka.TLS.KeyFile)
	if (c.Kafka.TLS.CertFile == "") != (c.Kafka.TLS.KeyFile == "") {
		add("kafka.tls.certFile", "certFile and keyFile go together")
	}
	switch c.Kafka.SASL.Mechanism {
	case "":
		if c.Kafka.SASL.Username != "" || c.Kafka.SASL.PasswordFile != "" {
			add("kafka.sasl.mechanism", "username/passwordFile are set but no mechanism (%s, %s or %s)", SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.Kafka.SASL.Username == "" {
			add("kafka.sasl.username", "required with mechanism %s", c.Kafka.SASL.Mechanism)
		}
		if c.Kafka.SASL.PasswordFile == "" && c.kafkaPassword == "" {
			add("kafka.sasl.passwordFile", "required with mechanism %s (or set REEL_KAFKA_SASL_PASSWORD)", c.Kafka.SASL.Mechanism)
		}
		if c.kafkaPassword == "" {
			file("kafka.sasl.passwordFile", c.Kafka.SASL.PasswordFile)
		}
	default:
		add("kafka.sasl.mechanism", "%q is not one of %s, %s, %s", c.Kafka.SASL.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}

	// catalog and declared projections
	var cat *schemas.Catalog
	var err error
	if c.Catalog.Registry && c.SchemaRegistry.URL == "" {
		add("catalog.registry", "needs schemaRegistry.url (the registry whose types join the catalog)")
	} else if cat, err = c.LoadCatalog(); err != nil {
		key := "catalog.dir"
		if c.Catalog.Registry {
			key = "catalog.registry"
		}
		add(key, "%v", err)
	}
	var loaded []*projection.Projection
	if cat != nil {
		var perr error
		if loaded, perr = c.loadAll(cat); perr != nil {
			var des declare.Errors
			if errors.As(perr, &des) {
				for _, e := range des {
					add("projections.dir", "%v", e)
				}
			} else {
				add("projections.dir", "%v", perr)
			}
		}
	}

	// schemaRegistry
	if u := c.SchemaRegistry.URL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			add("schemaRegistry.url", "must be an http:// or https:// URL")
		} else if pu.User != nil {
			add("schemaRegistry.url", "must not carry credentials; use username and passwordFile")
		}
	} else if c.SchemaRegistry.Username != "" || c.SchemaRegistry.PasswordFile != "" {
		add("schemaRegistry.url", "credentials are set but no url")
	}
	if c.registryPassword == "" {
		file("schemaRegistry.passwordFile", c.SchemaRegistry.PasswordFile)
	}

	// clickhouse
	if c.ClickHouse.DSN == "" {
		add("clickhouse.dsn", "required (http(s)://host:8123/db, or clickhouse://host:9000/db for the native protocol)")
	} else if u, err := url.Parse(c.ClickHouse.DSN); err != nil {
		add("clickhouse.dsn", "not a URL: %s", chclient.Redact(c.ClickHouse.DSN))
	} else if !slices.Contains([]string{"clickhouse", "tcp", "http", "https"}, u.Scheme) {
		add("clickhouse.dsn", "scheme %q: use http(s):// or clickhouse:// (native)", u.Scheme)
	} else if _, err := chclient.Options(c.ClickHouse.DSN); err != nil {
		add("clickhouse.dsn", "%v", err)
	}
	if c.ClickHouse.MaxOpenConns < 0 {
		add("clickhouse.maxOpenConns", "must be positive (0: the default, 64)")
	}
	c.ClickHouse.TLS.check("clickhouse.tls", add, file)
	if c.clickhousePassword == "" {
		file("clickhouse.passwordFile", c.ClickHouse.PasswordFile)
	}

	// projector
	p := c.Projector
	known := map[string]bool{}
	var names []string
	for _, pr := range loaded {
		known[pr.Name] = true
		names = append(names, pr.Name)
	}
	seen := map[string]bool{}
	for i, n := range p.Projections {
		path := fmt.Sprintf("projector.projections[%d]", i)
		// A projections.dir that failed to load is reported above.
		switch {
		case known[n] || cat == nil:
		case len(loaded) > 0:
			add(path, "unknown projection %q (have %s)", n, strings.Join(names, ", "))
		case c.Projections.Dir == "":
			add(path, "unknown projection %q (none: set projections.dir, or build a binary with Go projections)", n)
		}
		if seen[n] {
			add(path, "%q listed twice", n)
		}
		seen[n] = true
	}
	var ses projectors.TuningErrors
	if errors.As(p.Tuning.Validate(), &ses) {
		for _, e := range ses {
			add("projector."+e.Key, "%s", e.Msg)
		}
	}
	if p.GenerationPoll < 100*time.Millisecond {
		add("projector.generationPoll", "%s: must be ≥ 100ms", p.GenerationPoll)
	}

	// http
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		add("http.listen", "%q is not [host]:port", c.HTTP.Listen)
	}
	if c.adminToken == "" {
		file("http.adminTokenFile", c.HTTP.AdminTokenFile)
	}

	// log
	if _, err := ParseLevel(c.Log.Level); err != nil {
		add("log.level", "%v", err)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		add("log.format", "%q: use json or text", c.Log.Format)
	}
	if len(es) == 0 {
		return nil
	}
	return es
}

func (t TLS) check(path string, add func(string, string, ...any), file func(string, string)) {
	if !t.Enabled && (t.CAFile != "" || t.InsecureSkipVerify) {
		add(path+".enabled", "TLS settings are given but enabled is false")
	}
	file(path+".caFile", t.CAFile)
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: use debug, info, warn or error", s)
	}
	return l, nil
}

// errText drops the path from *PathError messages already naming it.
func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
