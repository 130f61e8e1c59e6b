//go:build chdb

package chserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// usersServer serves the test engine with users: a second front on the
// same pool (the engine takes one data directory per process).
func usersServer(t *testing.T, users ...User) string {
	t.Helper()
	base, err := shared()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: base.cfg, log: base.log, pool: base.pool, all: base.all, info: base.info, users: map[string]User{}, defaults: map[string]string{}}
	out, _, err := base.all[0].c.query("SELECT name, value FROM system.settings", "TabSeparatedRaw", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if n, v, ok := strings.Cut(line, "\t"); ok {
			s.defaults[n] = v
		}
	}
	for _, u := range users {
		s.users[u.Name] = u
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return strings.TrimPrefix(hs.URL, "http://")
}

func rawQuery(t *testing.T, addr, sql string, set func(*http.Request)) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(sql))
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-ClickHouse-Exception-Code"), string(b)
}

func TestUsersAndRights(t *testing.T) {
	addr := usersServer(t, User{Name: "writer", Password: "w-secret"}, User{Name: "reader", Password: "r-secret", Readonly: 2},
		User{Name: "strict", Password: "s-secret", Readonly: 1})

	// Refused: no credentials, wrong password, unknown user.
	for name, set := range map[string]func(*http.Request){
		"none":        nil,
		"wrong basic": func(r *http.Request) { r.SetBasicAuth("writer", "nope") },
		"wrong header": func(r *http.Request) {
			r.Header.Set("X-ClickHouse-User", "reader")
			r.Header.Set("X-ClickHouse-Key", "w-secret")
		},
		"unknown user":   func(r *http.Request) { r.SetBasicAuth("root", "") },
		"empty password": func(r *http.Request) { r.SetBasicAuth("writer", "") },
	} {
		code, exc, body := rawQuery(t, addr, "SELECT 1", set)
		if code != 403 || exc != "516" || !strings.Contains(body, "Authentication failed") {
			t.Errorf("%s: %d %s %q; want 403, AUTHENTICATION_FAILED", name, code, exc, body)
		}
	}
	// Accepted: every way ClickHouse takes credentials.
	for name, set := range map[string]func(*http.Request){
		"basic": func(r *http.Request) { r.SetBasicAuth("writer", "w-secret") },
		"header": func(r *http.Request) {
			r.Header.Set("X-ClickHouse-User", "writer")
			r.Header.Set("X-ClickHouse-Key", "w-secret")
		},
		"params": func(r *http.Request) { r.URL.RawQuery = "user=writer&password=w-secret" },
	} {
		if code, _, body := rawQuery(t, addr, "SELECT 1", set); code != 200 || body != "1\n" {
			t.Errorf("%s: %d %q", name, code, body)
		}
	}

	// Through clickhouse-go: the writer writes, the reader reads only.
	ctx := context.Background()
	asWriter := func(o *clickhouse.Options) { o.Auth.Username, o.Auth.Password = "writer", "w-secret" }
	db := "users_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "_")
	exec(t, dial(t, addr, "default", asWriter), "CREATE DATABASE "+db)
	writer := dial(t, addr, db, asWriter)
	exec(t, writer, "CREATE TABLE t (n UInt32) ENGINE = MergeTree ORDER BY n")
	exec(t, writer, "INSERT INTO t VALUES (1), (2)")
	reader := dial(t, addr, db, func(o *clickhouse.Options) { o.Auth.Username, o.Auth.Password = "reader", "r-secret" })
	var n uint64
	if err := reader.QueryRow(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": 1})), "SELECT count() FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("reader SELECT: %d %v", n, err)
	}
	for _, sql := range []string{
		"INSERT INTO t VALUES (3)", "INSERT INTO t SELECT 4", "CREATE TABLE u (n UInt8) ENGINE = Memory",
		"DROP TABLE t", "ALTER TABLE t DELETE WHERE 1", "SET max_threads = 1", "SYSTEM FLUSH LOGS",
		"SELECT 1 INTO OUTFILE '/tmp/reel-chdb-readonly-test'", "OPTIMIZE TABLE t FINAL",
	} {
		err := reader.Exec(ctx, sql)
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != codeReadonly {
			t.Errorf("reader %q: %v; want READONLY (164)", sql, err)
		}
	}
	// readonly = 1: reads, but no settings other than their defaults —
	// which rules out clickhouse-go, whose connection check carries
	// max_execution_time from the dial deadline: a read-only user for
	// Reel's tools needs readonly = 2.
	asStrict := func(r *http.Request) { r.SetBasicAuth("strict", "s-secret"); r.URL.RawQuery = "database=" + db }
	if code, _, body := rawQuery(t, addr, "SELECT count() FROM t", asStrict); code != 200 || body != "2\n" {
		t.Fatalf("strict SELECT: %d %q", code, body)
	}
	if code, _, body := rawQuery(t, addr, "SELECT 1", func(r *http.Request) { r.SetBasicAuth("strict", "s-secret"); r.URL.RawQuery = "async_insert=1" }); code != 200 {
		t.Fatalf("strict user, a setting at its default (async_insert=1 in 26.7): %d %q", code, body)
	}
	code, exc, body := rawQuery(t, addr, "SELECT 1", func(r *http.Request) { r.SetBasicAuth("strict", "s-secret"); r.URL.RawQuery = "async_insert=0" })
	if code != 403 || exc != "164" || !strings.Contains(body, "Cannot modify 'async_insert' setting in readonly mode") {
		t.Fatalf("strict user changing a setting: %d %s %q", code, exc, body)
	}
	strictConn, err := clickhouse.Open(&clickhouse.Options{Protocol: clickhouse.HTTP, Addr: []string{addr}, Auth: clickhouse.Auth{Database: db, Username: "strict", Password: "s-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer strictConn.Close()
	var rex *clickhouse.Exception
	if err := strictConn.Ping(ctx); !errors.As(err, &rex) || rex.Code != codeReadonly {
		t.Fatalf("clickhouse-go as a readonly=1 user: %v; want READONLY from its connection check", err)
	}
	b, err := reader.PrepareBatch(ctx, "INSERT INTO t")
	if err == nil {
		_ = b.Append(uint32(9))
		err = b.Send()
	}
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != codeReadonly {
		t.Errorf("reader batch insert: %v; want READONLY", err)
	}
	if err := writer.QueryRow(ctx, "SELECT count() FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after the reader's attempts: %d %v", n, err)
	}
}

// TestParametersOnFirstStatement: clickhouse-go sends its connection check
// with the query parameters of the connection's first statement; that
// failed with "failed to query server hello … block decode".
func TestParametersOnFirstStatement(t *testing.T) {
	for _, compress := range []bool{false, true} {
		o := &clickhouse.Options{Protocol: clickhouse.HTTP, Addr: []string{testAddr}, DialTimeout: 10 * time.Second}
		if compress {
			o.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
		}
		conn, err := clickhouse.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		ctx := clickhouse.Context(context.Background(), clickhouse.WithParameters(clickhouse.Parameters{"n": "21", "s": "x"}))
		var got uint16
		var s string
		if err := conn.QueryRow(ctx, "SELECT {n:UInt8} * 2, {s:String}").Scan(&got, &s); err != nil || got != 42 || s != "x" {
			t.Fatalf("compress=%v: %d %q %v", compress, got, s, err)
		}
		conn.Close()
	}
}

func TestParseUsers(t *testing.T) {
	us, err := ParseUsers(strings.NewReader("# comment\n\nreel  s3cret write\nanalyst - readonly\n"))
	if err != nil || len(us) != 2 || us[0] != (User{"reel", "s3cret", 0}) || us[1] != (User{"analyst", "", 1}) {
		t.Fatalf("%+v %v", us, err)
	}
	if us, err := ParseUsers(strings.NewReader("q p readonly=2")); err != nil || us[0].Readonly != 2 {
		t.Fatalf("readonly=2: %+v %v", us, err)
	}
	for _, bad := range []string{"a b", "a b admin", "a b write\na c readonly", "a b readonly=3"} {
		if _, err := ParseUsers(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
