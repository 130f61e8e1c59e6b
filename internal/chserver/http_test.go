//go:build chdb

package chserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func post(t testing.TB, path, body string) string {
	t.Helper()
	resp, err := http.Post("http://"+testAddr+path, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %s: %s", path, resp.Status, b)
	}
	return string(b)
}

func get(t testing.TB, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get("http://" + testAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// What curl sees: the answers of ClickHouse's HTTP interface.
func TestCurlInterface(t *testing.T) {
	for _, p := range []string{"/ping", "/"} {
		if code, _, body := get(t, p); code != 200 || body != "Ok.\n" {
			t.Errorf("GET %s = %d %q", p, code, body)
		}
	}
	if code, h, body := get(t, "/?query=SELECT+1"); code != 200 || body != "1\n" || h.Get("X-ClickHouse-Format") != "TabSeparated" {
		t.Errorf("SELECT 1 = %d %q %v", code, body, h)
	}
	if _, _, body := get(t, "/?query=SELECT+number,+'a%09b'+AS+s+FROM+numbers(2)+FORMAT+JSONEachRow"); body != "{\"number\":0,\"s\":\"a\\tb\"}\n{\"number\":1,\"s\":\"a\\tb\"}\n" {
		t.Errorf("JSONEachRow = %q", body)
	}
	if got := post(t, "/?default_format=CSV", "SELECT 1, 'x'"); got != "1,\"x\"\n" {
		t.Errorf("default_format=CSV: %q", got)
	}
	if got := post(t, "/?param_n=3", "SELECT {n:UInt8} * 2"); got != "6\n" {
		t.Errorf("query parameter: %q", got)
	}
	code, h, body := get(t, "/?query=SELEC+1")
	if code != 400 || h.Get("X-ClickHouse-Exception-Code") != "62" || !strings.HasPrefix(body, "Code: 62. DB::Exception:") {
		t.Errorf("syntax error = %d %v %q", code, h, body)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	c, _ := testDB(t, testAddr)
	for _, tc := range []struct {
		sql  string
		code int32
	}{
		{"SELEC 1", 62},
		{"SELECT * FROM no_such_table", 60},
		{"SELECT throwIf(number = 3, 'boom') FROM numbers(10)", 395},
	} {
		err := c.Exec(ctx, tc.sql)
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != tc.code {
			t.Errorf("%s: error %v, want *clickhouse.Exception code %d", tc.sql, err, tc.code)
		}
		rows, err := c.Query(ctx, tc.sql)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		if !errors.As(err, &ex) || ex.Code != tc.code {
			t.Errorf("query %s: error %v, want *clickhouse.Exception code %d", tc.sql, err, tc.code)
		}
	}
	// A failure after the first megabyte of a result arrives in-band.
	rows, err := c.Query(ctx, "SELECT number, repeat('x', 100) FROM numbers(2000000) WHERE throwIf(number = 1500000, 'late') = 0")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 395 {
		t.Errorf("late failure: %v, want code 395", err)
	}
	// The server and the connection stay usable.
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// URL settings reach the engine for that request only.
func TestSettings(t *testing.T) {
	ctx := context.Background()
	c, _ := testDB(t, testAddr, func(o *clickhouse.Options) {
		o.Settings = clickhouse.Settings{"max_result_rows": 10, "result_overflow_mode": "throw"}
	})
	err := c.Exec(ctx, "SELECT number FROM numbers(100)")
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 396 { // TOO_MANY_ROWS_OR_BYTES
		t.Fatalf("max_result_rows=10: %v, want code 396", err)
	}
	// Per query, through the context.
	qctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_result_rows": 1000, "max_threads": 3}))
	var mt uint64
	if err := c.QueryRow(qctx, "SELECT toUInt64(getSetting('max_threads'))").Scan(&mt); err != nil || mt != 3 {
		t.Fatalf("max_threads = %d, %v", mt, err)
	}
	// Not left behind on the pooled engine connections for other clients.
	other := dial(t, testAddr, "default")
	for range 8 {
		var v uint64
		if err := other.QueryRow(ctx, "SELECT toUInt64(getSetting('max_result_rows'))").Scan(&v); err != nil || v != 0 {
			t.Fatalf("max_result_rows leaked: %d, %v", v, err)
		}
	}
	// An unknown setting is the engine's error.
	bad := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"no_such_setting_x": 1}))
	if err := c.Exec(bad, "SELECT 1"); !errors.As(err, &ex) || ex.Code != 115 {
		t.Fatalf("unknown setting: %v, want code 115", err)
	}
	if err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("after a failed SET: %v", err)
	}
}

func TestServerVersion(t *testing.T) {
	c := dial(t, testAddr, "default")
	v, err := c.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Version.Major < 25 || (v.Version.Major == 25 && v.Version.Minor < 8) {
		t.Fatalf("server version %v: clickhouse-go would warn below 25.8", v.Version)
	}
}

// Responses are compressed as asked: ClickHouse frames for compress=1,
// Content-Encoding only with enable_http_compression=1.
func TestResponseCompression(t *testing.T) {
	const q = "/?query=SELECT+repeat('x',1000)+FROM+numbers(100)"
	resp, err := http.Get("http://" + testAddr + q + "&compress=1")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fr := newFrameReader(strings.NewReader(string(raw)))
	plain, err := io.ReadAll(fr)
	if err != nil || len(plain) != 100*1001 || len(raw) >= len(plain) {
		t.Fatalf("compress=1: %d raw bytes → %d, %v", len(raw), len(plain), err)
	}
	for _, enc := range []string{"gzip", "deflate", "br", "zstd"} {
		req, _ := http.NewRequest("GET", "http://"+testAddr+q+"&enable_http_compression=1", nil)
		req.Header.Set("Accept-Encoding", enc)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Content-Encoding") != enc || len(raw) > 10_000 {
			t.Errorf("%s: Content-Encoding %q, %d bytes", enc, resp.Header.Get("Content-Encoding"), len(raw))
		}
	}
	req, _ := http.NewRequest("GET", "http://"+testAddr+q, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err = http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("compressed without enable_http_compression=1")
	}
}
