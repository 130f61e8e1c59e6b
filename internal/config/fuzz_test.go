package config_test

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary YAML and environment overrides to the loader
// and the validator: neither may panic, and a configuration Validate
// accepts must survive a second Parse of the same bytes unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(full), "")
	f.Add([]byte(""), "REEL_KAFKA_BROKERS=a:1,b:2\nREEL_DURABLE=1\nREEL_PROJECTOR_FLUSH_INTERVAL=300ms\nREEL_PROJECTOR_MAX_PENDING=x")
	f.Add([]byte("clickhouse:\n  dsn: \"https://u:p@h:8443/db?secure=true\"\n  tls: {enabled: true}\n"), "REEL_CLICKHOUSE_PASSWORD=x")
	f.Add([]byte("kafka:\n  sasl: {mechanism: SCRAM-SHA-512, username: u}\n"), "")
	f.Add([]byte("projector:\n  batchEvents: -1\n  flushInterval: 1h2m\n  retryMin: 0s\n"), "REEL_PROJECTIONS=, ,seats")
	f.Add([]byte("kafka: [1, 2]\n"), "")
	f.Add([]byte("&a [*a]"), "")
	f.Add([]byte("log: {level: loud}\nhttp: {listen: \"::\"}\n"), "REEL_LOG_LEVEL=debug")
	f.Fuzz(func(t *testing.T, yaml []byte, envText string) {
		envs := map[string]string{}
		for _, line := range strings.Split(envText, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasSuffix(k, "_FILE") {
				envs[k] = v
			}
		}
		c, err := parse(yaml, env(envs))
		if err != nil {
			return
		}
		if c.Validate() != nil {
			return
		}
		again, err := parse(yaml, env(envs))
		if err != nil || again.Validate() != nil {
			t.Fatalf("a valid configuration did not parse again: %v", err)
		}
	})
}
