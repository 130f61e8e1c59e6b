package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-dev/reel/internal/httpapi"
)

// recorder is an Admin that records calls; the real one (the supervisor)
// is exercised end to end in cmd/reel's tests.
type recorder struct{ calls []string }

func (r *recorder) ReplayParked(_ context.Context, p string, _ int, a string) (any, error) {
	r.calls = append(r.calls, "replay "+p+" "+a)
	return map[string]int{"resolved": 1}, nil
}

func (r *recorder) DiscardParked(_ context.Context, p string, _ int, a string) (any, error) {
	r.calls = append(r.calls, "discard "+p+" "+a)
	return nil, httpapi.Errorf(http.StatusConflict, "not the owner")
}

func do(t *testing.T, h http.Handler, method, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestAdminToken(t *testing.T) {
	rec := &recorder{}
	h := httpapi.Handler(httpapi.Options{Gatherer: prometheus.NewRegistry(), Admin: rec, Token: "t0ken"})
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {"t0ken-longer", 401}, {"t0ke", 401}, {"t0ken", 200}} {
		w := do(t, h, http.MethodPost, "/admin/dlq/replay?projection=orders&aggregate=o-1", tc.token)
		if w.Code != tc.want {
			t.Errorf("token %q: %d, want %d (%s)", tc.token, w.Code, tc.want, w.Body)
		}
		if strings.Contains(w.Body.String(), "t0ken") {
			t.Errorf("the token is echoed: %s", w.Body)
		}
	}
	if len(rec.calls) != 1 || rec.calls[0] != "replay orders o-1" {
		t.Fatalf("admin calls: %v", rec.calls)
	}
	if w := do(t, h, http.MethodPost, "/admin/dlq/discard?projection=orders&aggregate=o-1", "t0ken"); w.Code != http.StatusConflict {
		t.Fatalf("typed error status: %d", w.Code)
	}
	if w := do(t, h, http.MethodPost, "/admin/dlq/replay?projection=orders", "t0ken"); w.Code != http.StatusBadRequest {
		t.Fatalf("missing aggregate: %d", w.Code)
	}
	if w := do(t, h, http.MethodGet, "/admin/dlq/replay?projection=orders&aggregate=a", "t0ken"); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET on an admin endpoint: %d", w.Code)
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	rec := &recorder{}
	h := httpapi.Handler(httpapi.Options{Gatherer: prometheus.NewRegistry(), Admin: rec})
	for _, tok := range []string{"", "anything"} {
		if w := do(t, h, http.MethodPost, "/admin/dlq/discard?projection=p&aggregate=a", tok); w.Code != http.StatusForbidden {
			t.Fatalf("no token configured, token %q: %d", tok, w.Code)
		}
	}
	if len(rec.calls) != 0 {
		t.Fatalf("admin reached: %v", rec.calls)
	}
}

func TestHealthAndReady(t *testing.T) {
	var notReady error = errors.New("ClickHouse unreachable")
	h := httpapi.Handler(httpapi.Options{Gatherer: prometheus.NewRegistry(), Ready: func(context.Context) error { return notReady }})
	if w := do(t, h, http.MethodGet, "/healthz", ""); w.Code != 200 {
		t.Fatalf("/healthz %d", w.Code)
	}
	if w := do(t, h, http.MethodGet, "/readyz", ""); w.Code != 503 || !strings.Contains(w.Body.String(), "ClickHouse unreachable") {
		t.Fatalf("/readyz %d %s", w.Code, w.Body)
	}
	notReady = nil
	if w := do(t, h, http.MethodGet, "/readyz", ""); w.Code != 200 {
		t.Fatalf("/readyz %d", w.Code)
	}
	if w := do(t, h, http.MethodGet, "/metrics", ""); w.Code != 200 {
		t.Fatalf("/metrics %d", w.Code)
	}
}

// TestAdminLockout: repeated wrong tokens from one address lock it out,
// the right token included, until the lockout ends; other addresses are
// not affected; the admin is never called meanwhile.
func TestAdminLockout(t *testing.T) {
	rec := &recorder{}
	const lockout = 300 * time.Millisecond
	h := httpapi.Handler(httpapi.Options{Gatherer: prometheus.NewRegistry(), Admin: rec, Token: "t0ken", MaxFailures: 3, Lockout: lockout})
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/dlq/replay?projection=orders&aggregate=o-1", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	codes := map[int]int{}
	for i := range 100 {
		tok := "guess-" + strconv.Itoa(i)
		if i%2 == 0 {
			tok = ""
		}
		codes[post(tok).StatusCode]++
	}
	if codes[401] != 3 || codes[429] != 97 {
		t.Fatalf("100 wrong tokens: %v; want 3×401 then 429", codes)
	}
	start := time.Now()
	resp := post("t0ken")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right token while locked out: %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another address is not locked out.
	req := httptest.NewRequest(http.MethodPost, "/admin/dlq/replay?projection=orders&aggregate=o-2", nil)
	req.RemoteAddr = "198.51.100.7:4000"
	req.Header.Set("Authorization", "Bearer t0ken")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("other address: %d", w.Code)
	}
	if len(rec.calls) != 1 {
		t.Fatalf("admin calls during the attack: %v", rec.calls)
	}
	time.Sleep(lockout - time.Since(start) + 50*time.Millisecond)
	if resp := post("t0ken"); resp.StatusCode != 200 {
		t.Fatalf("right token after the lockout: %d", resp.StatusCode)
	}
	t.Logf("100 wrong tokens: %v", codes)
}
