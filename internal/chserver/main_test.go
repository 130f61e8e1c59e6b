//go:build chdb

package chserver

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The engine takes one data directory per process, so the whole test binary
// shares one in-process server (httptest) on one directory; every test gets
// its own database. Tests of the reel-chdb binary itself start it through
// internal/chproc on directories of their own.
var (
	testAddr string
	testSrv  *Server
)

// shared is the test binary's server.
func shared() (*Server, error) { return testSrv, nil }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chserver-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lv := slog.LevelWarn
	if os.Getenv("CHSERVER_DEBUG") != "" {
		lv = slog.LevelDebug
	}
	srv, err := New(Config{Path: dir, PoolSize: 4, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "chserver: ", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	testSrv = srv
	hs := httptest.NewServer(srv)
	testAddr = strings.TrimPrefix(hs.URL, "http://")
	code := m.Run()
	hs.Close()
	srv.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

var dbSeq atomic.Int64

// testDB creates a fresh database and returns a clickhouse-go HTTP
// connection to addr using it. opts may adjust the options.
func testDB(t testing.TB, addr string, opts ...func(*clickhouse.Options)) (driver.Conn, string) {
	t.Helper()
	db := fmt.Sprintf("t%d_%d", time.Now().UnixNano()%1e6, dbSeq.Add(1))
	admin := dial(t, addr, "default")
	if err := admin.Exec(context.Background(), "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return dial(t, addr, db, opts...), db
}

func dial(t testing.TB, addr, db string, opts ...func(*clickhouse.Options)) driver.Conn {
	t.Helper()
	o := &clickhouse.Options{
		Protocol:    clickhouse.HTTP,
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: db},
		DialTimeout: 10 * time.Second,
	}
	for _, f := range opts {
		f(o)
	}
	conn, err := clickhouse.Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := conn.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func exec(t testing.TB, c driver.Conn, sql string) {
	t.Helper()
	if err := c.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func withCompression(m clickhouse.CompressionMethod) func(*clickhouse.Options) {
	return func(o *clickhouse.Options) { o.Compression = &clickhouse.Compression{Method: m} }
}
