package testenv

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// The SASL test user, known to every test Kafka: scripts/kafka.sh creates it
// for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 on its SASL_PLAINTEXT listener,
// and KafkaSASL seeds it into kfake.
const (
	SASLUser     = "reel"
	SASLPassword = "reel-secret"
)

// KafkaSASL returns seed brokers that require SASL (PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512 as SASLUser/SASLPassword): the real listener named by
// REEL_KAFKA_SASL_BROKERS (checked reachable), otherwise a fresh in-process
// kfake cluster with SASL on. With REEL_INTEGRATION=1 and no
// REEL_KAFKA_SASL_BROKERS it fails.
func KafkaSASL(t testing.TB) []string {
	t.Helper()
	if env := os.Getenv("REEL_KAFKA_SASL_BROKERS"); env != "" {
		brokers := strings.Split(env, ",")
		for _, b := range brokers {
			c, err := net.DialTimeout("tcp", b, 3*time.Second)
			if err != nil {
				t.Fatalf("testenv: Kafka SASL listener %s (REEL_KAFKA_SASL_BROKERS) not reachable: %v; start it with `bash scripts/kafka.sh start`", b, err)
			}
			c.Close()
		}
		return brokers
	}
	if Integration() {
		t.Fatalf("testenv: REEL_INTEGRATION=1 but REEL_KAFKA_SASL_BROKERS is not set; run the suite through scripts/test.sh")
	}
	c := Fake(t,
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", SASLUser, SASLPassword),
		kfake.Superuser("SCRAM-SHA-256", SASLUser, SASLPassword),
		kfake.Superuser("SCRAM-SHA-512", SASLUser, SASLPassword),
	)
	return c.ListenAddrs()
}
