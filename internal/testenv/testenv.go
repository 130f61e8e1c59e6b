// Package testenv gives tests a Kafka, a ClickHouse and a schema registry.
//
// Fast tests get franz-go's kfake and srfake in process. The integration
// suite is switched on by REEL_INTEGRATION=1 (scripts/test.sh and .ci/run
// set it); it uses the real servers named by REEL_KAFKA_BROKERS,
// REEL_REGISTRY_URL and REEL_CLICKHOUSE_DSN (and the Python of REEL_PYTHON)
// and FAILS when they are missing or unreachable — it never skips.
//
// Without REEL_CLICKHOUSE_DSN, ClickHouse tests start the embedded reel-chdb
// server once per test binary (call testenv.Main from TestMain to stop it).
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
//	func TestX(t *testing.T) {
//		brokers := testenv.Kafka(t)
//		ch := testenv.ClickHouse(t) // fresh database per test
//		reg, url := testenv.RegistryClient(t) // empty registry per test
//	}
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/chproc"
)

// Integration reports whether the integration suite is switched on.
func Integration() bool { return os.Getenv("REEL_INTEGRATION") == "1" }

// RealKafka reports whether tests use a real Kafka (REEL_KAFKA_BROKERS).
func RealKafka() bool { return os.Getenv("REEL_KAFKA_BROKERS") != "" }

// Kafka returns seed brokers for a test: the real Kafka in REEL_KAFKA_BROKERS
// (checked reachable), otherwise a fresh in-process kfake cluster. With
// REEL_INTEGRATION=1 and no REEL_KAFKA_BROKERS it fails.
func Kafka(t testing.TB) []string {
	t.Helper()
	if env := os.Getenv("REEL_KAFKA_BROKERS"); env != "" {
		brokers := strings.Split(env, ",")
		for _, b := range brokers {
			c, err := net.DialTimeout("tcp", b, 3*time.Second)
			if err != nil {
				t.Fatalf("testenv: Kafka broker %s (REEL_KAFKA_BROKERS) not reachable: %v; start it with `bash scripts/kafka.sh start`", b, err)
			}
			c.Close()
		}
		resetKafka(t, brokers)
		return brokers
	}
	if Integration() {
		t.Fatalf("testenv: REEL_INTEGRATION=1 but REEL_KAFKA_BROKERS is not set; run the suite through scripts/test.sh")
	}
	return Fake(t).ListenAddrs()
}

// Fake starts an in-process kfake cluster (one broker, 6 partitions per
// auto-created topic unless opts say otherwise), closed when the test ends.
func Fake(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	base := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(6), kfake.AllowAutoTopicCreation()}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		t.Fatalf("testenv: kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// CH is a ClickHouse database reserved for one test.
type CH struct {
	DSN      string      // DSN naming the test's database
	Database string      // the test's database
	Conn     driver.Conn // connection to it, closed when the test ends
}

var (
	chOnce sync.Once
	chSrv  *chproc.Server
	chDSN  string
	chErr  error
	dbSeq  int
	dbMu   sync.Mutex
)

// ClickHouseServer returns the DSN of the ClickHouse server for this test
// binary (REEL_CLICKHOUSE_DSN, or the embedded reel-chdb started once).
func ClickHouseServer(t testing.TB) string {
	t.Helper()
	chOnce.Do(func() {
		if env := os.Getenv("REEL_CLICKHOUSE_DSN"); env != "" {
			chDSN = env
			return
		}
		dir, err := os.MkdirTemp("", "reel-chdb-test-")
		if err != nil {
			chErr = err
			return
		}
		chSrv, chErr = chproc.Start(context.Background(), chproc.Options{Dir: dir, Log: os.Stderr})
		if chErr == nil {
			chDSN = chSrv.DSN()
		}
	})
	if chErr != nil {
		if Integration() || chErr != chproc.ErrNotInstalled {
			t.Fatalf("testenv: ClickHouse: %v", chErr)
		}
		t.Skipf("testenv: %v (set REEL_INTEGRATION=1 to make this a failure)", chErr)
	}
	return chDSN
}

// ClickHouseProcess starts a reel-chdb of the test's own (o.Dir defaults to
// a temporary directory), stopped when the test ends: for tests of TLS and
// users, which the shared server does not have.
func ClickHouseProcess(t testing.TB, o chproc.Options) *chproc.Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	srv, err := chproc.Start(context.Background(), o)
	if err != nil {
		if Integration() || err != chproc.ErrNotInstalled {
			t.Fatalf("testenv: ClickHouse: %v", err)
		}
		t.Skipf("testenv: %v (set REEL_INTEGRATION=1 to make this a failure)", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// ClickHouse creates a fresh database for the test on the test ClickHouse
// server and returns a connection to it.
func ClickHouse(t testing.TB) CH {
	t.Helper()
	server := ClickHouseServer(t)
	ctx := context.Background()
	admin, err := chclient.Open(ctx, server)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer admin.Close()
	dbMu.Lock()
	dbSeq++
	db := fmt.Sprintf("t_%d_%d_%s", os.Getpid(), dbSeq, sanitize(t.Name()))
	dbMu.Unlock()
	if len(db) > 120 {
		db = db[:120]
	}
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		t.Fatalf("testenv: create database %s: %v", db, err)
	}
	dsn, err := chclient.WithDatabase(server, db)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	conn, err := chclient.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		if os.Getenv("REEL_KEEP_TEST_DB") == "" {
			if a, err := chclient.Open(context.Background(), server); err == nil {
				_ = a.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" SYNC")
				a.Close()
			}
		}
	})
	return CH{DSN: dsn, Database: db, Conn: conn}
}

func sanitize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Main runs the tests and stops the embedded ClickHouse afterwards.
func Main(m *testing.M) {
	code := m.Run()
	if chSrv != nil {
		chSrv.Stop()
	}
	os.Exit(code)
}
