package chclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/testenv"
)

func TestWriteSettingsCannotBeOverridden(t *testing.T) {
	s := chclient.WriteSettings(clickhouse.Settings{"async_insert": 1, "log_comment": "x"})
	if s["async_insert"] != "0" || s["log_comment"] != "x" || s["insert_deduplicate"] != "1" {
		t.Fatalf("%v", s)
	}
}

// TestCheckServerRefusesOverriddenSettings puts a proxy between Reel and
// the server that drops async_insert from every request — what a settings
// profile pinning it does — so the server applies its own default
// (async_insert = 1 on 26.7). CheckServer must see it and refuse.
func TestCheckServerRefusesOverriddenSettings(t *testing.T) {
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	if _, err := chclient.CheckServer(ctx, ch.Conn); err != nil {
		t.Fatalf("the server as it is: %v", err)
	}
	target, err := url.Parse(ch.DSN)
	if err != nil {
		t.Fatal(err)
	}
	target.Path = ""
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Del("async_insert")
		r.URL.RawQuery = q.Encode()
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	u, _ := url.Parse(ch.DSN)
	u.Host = strings.TrimPrefix(srv.URL, "http://")
	conn, err := chclient.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = chclient.CheckServer(ctx, conn)
	var ue *chclient.UnsafeSettingsError
	if !errors.As(err, &ue) || !errors.Is(err, chclient.ErrUnsafeSettings) || !strings.Contains(err.Error(), "setting async_insert = 1 although Reel's writes set 0") {
		t.Fatalf("CheckServer through the overriding proxy: %v", err)
	}
	t.Log(err)
}
