package chclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestClassifyServerErrors classifies what the real engine answers, over
// the protocol Reel's DSN uses: every permanent case must stop a retry
// loop, every transient one must not.
func TestClassifyServerErrors(t *testing.T) {
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := ch.Conn.Exec(ctx, "CREATE TABLE t (n UInt8) ENGINE = MergeTree ORDER BY n"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		sql  string
		want chclient.Class
		code int32
	}{
		{"SELEKT 1", chclient.Permanent, 62},                                                                              // SYNTAX_ERROR
		{"SELECT * FROM no_such_table", chclient.Permanent, 60},                                                           // UNKNOWN_TABLE
		{"SELECT no_such_column FROM t", chclient.Permanent, 47},                                                          // UNKNOWN_IDENTIFIER
		{"INSERT INTO t (n) SELECT 'x'", chclient.Permanent, 6},                                                           // CANNOT_PARSE_TEXT
		{"SELECT 1 SETTINGS no_such_setting = 1", chclient.Permanent, 115},                                                // UNKNOWN_SETTING
		{"SELECT throwIf(1, 'x', toInt32(252)) SETTINGS allow_custom_error_code_in_throwif = 1", chclient.Transient, 252}, // TOO_MANY_PARTS
		{"SELECT throwIf(1, 'x', toInt32(241)) SETTINGS allow_custom_error_code_in_throwif = 1", chclient.Transient, 241}, // MEMORY_LIMIT_EXCEEDED
		{"SELECT sleep(3) SETTINGS max_execution_time = 1", chclient.Transient, 159},                                      // TIMEOUT_EXCEEDED
	}
	perm := 0
	for _, c := range cases {
		err := ch.Conn.Exec(ctx, c.sql)
		if err == nil {
			t.Fatalf("%s: no error", c.sql)
		}
		got := chclient.Classify(err)
		code, name := chclient.Code(err)
		if got != c.want || code != c.code {
			t.Errorf("%s: %v code %d (%s), want %v code %d; err: %v", c.sql, got, code, name, c.want, c.code, err)
		}
		if got == chclient.Permanent {
			perm++
			pe := chclient.AsPermanent("test", err)
			var typed *chclient.PermanentError
			if !errors.Is(pe, chclient.ErrPermanent) || !errors.As(pe, &typed) || typed.Code != c.code {
				t.Errorf("%s: AsPermanent gave %v", c.sql, pe)
			}
		}
	}
	t.Logf("%d server errors classified (%d permanent)", len(cases), perm)
}

func TestClassifyClientErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = chclient.Open(ctx, "http://"+addr+"/default")
	if err == nil || chclient.Classify(err) != chclient.Transient {
		t.Fatalf("connection refused: %v classified %v, want transient", err, chclient.Classify(err))
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if c := chclient.Classify(fmt.Errorf("x: %w", cctx.Err())); c != chclient.Canceled {
		t.Fatalf("canceled context classified %v", c)
	}
	if c := chclient.Classify(context.DeadlineExceeded); c != chclient.Transient {
		t.Fatalf("deadline classified %v", c)
	}
}
