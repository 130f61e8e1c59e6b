// Package httpapi is the operations endpoint of `reel project`: Prometheus
// metrics, liveness, readiness, and the bearer-token admin endpoints that
// resolve parked aggregates in the running projectors.
//
//	h := httpapi.Handler(httpapi.Options{
//		Gatherer: reg,                  // the injected registry
//		Ready:    sup.Ready,            // every runner assigned, ClickHouse reachable
//		Admin:    sup,                  // replay / discard parked aggregates
//		Token:    token,                // "" disables /admin/
//		Log:      log,
//	})
//	srv := &http.Server{Addr: ":9464", Handler: h}
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin resolves parked aggregates in the running projectors. gen 0 means
// the projection's live generation. Errors may carry an HTTP status (see
// Error); others answer 500.
type Admin interface {
	ReplayParked(ctx context.Context, projection string, gen int, aggregate string) (any, error)
	DiscardParked(ctx context.Context, projection string, gen int, aggregate string) (any, error)
}

// Error is an error with the HTTP status it answers.
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Err: fmt.Errorf(format, args...)}
}

// Options configure Handler.
type Options struct {
	// Gatherer is exposed on /metrics. Required.
	Gatherer prometheus.Gatherer
	// Ready reports nil when the process should receive work. Default: ready.
	Ready func(ctx context.Context) error
	// Admin serves /admin/dlq/…. Nil: 501.
	Admin Admin
	// Token is the admin bearer token. Empty: admin endpoints answer 403,
	// so an unconfigured deployment cannot be driven by anyone.
	Token string
	// Log receives admin actions (never the token). Default slog.Default().
	Log *slog.Logger
	// ReadyTimeout bounds one readiness check. Default 3s.
	ReadyTimeout time.Duration
	// MaxFailures wrong or missing tokens from one client address lock
	// that address out of the admin endpoints for Lockout (429 with
	// Retry-After, even with the right token), so a token cannot be
	// guessed at network speed. Defaults 5 and 1 minute.
	MaxFailures int
	Lockout     time.Duration
}

// Handler returns the operations mux.
func Handler(o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 3 * time.Second
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	if o.Lockout <= 0 {
		o.Lockout = time.Minute
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{o.Log}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), o.ReadyTimeout)
			defer cancel()
			if err := o.Ready(ctx); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	a := &admin{o: o, sum: sha256.Sum256([]byte(o.Token)), fails: map[string]*failures{}}
	mux.HandleFunc("POST /admin/dlq/replay", a.guard(a.replay))
	mux.HandleFunc("POST /admin/dlq/discard", a.guard(a.discard))
	return mux
}

type admin struct {
	o   Options
	sum [32]byte

	mu    sync.Mutex
	fails map[string]*failures // by client address
}

// failures counts a client's wrong tokens since since.
type failures struct {
	n           int
	since       time.Time
	lockedUntil time.Time
}

// maxTracked bounds the failure table: past it, entries whose window and
// lockout are over are dropped first.
const maxTracked = 10000

// guard enforces the bearer token. Hashing both sides first makes the
// comparison constant-time regardless of the tokens' lengths; a client
// that keeps sending wrong tokens is locked out.
func (a *admin) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.o.Token == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "admin endpoints are disabled: no admin token configured (http.adminTokenFile or REEL_ADMIN_TOKEN)"})
			return
		}
		client := clientAddr(r)
		now := time.Now()
		if wait := a.locked(client, now); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+1)))
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many wrong tokens from this address; locked out"})
			return
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(got[:], a.sum[:]) != 1 {
			locked := a.fail(client, now)
			w.Header().Set("WWW-Authenticate", `Bearer realm="reel-admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			a.o.Log.Warn("admin request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "token_given", ok, "locked_out", locked)
			return
		}
		h(w, r)
	}
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// locked returns how long client stays locked out (0: not).
func (a *admin) locked(client string, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f := a.fails[client]; f != nil && now.Before(f.lockedUntil) {
		return f.lockedUntil.Sub(now)
	}
	return 0
}

// fail counts a wrong token of client within the lockout window and
// reports whether client is now locked out. A right token does not reset
// the count: only the window's end does.
func (a *admin) fail(client string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.fails[client]
	if f == nil || now.Sub(f.since) > a.o.Lockout {
		if f == nil && len(a.fails) >= maxTracked {
			for k, g := range a.fails {
				if now.Sub(g.since) > a.o.Lockout && now.After(g.lockedUntil) {
					delete(a.fails, k)
				}
			}
		}
		if f == nil && len(a.fails) >= maxTracked {
			// Too many addresses failing at once: count them all as one.
			client = "*"
			f = a.fails[client]
		}
		if f == nil || now.Sub(f.since) > a.o.Lockout {
			f = &failures{since: now}
			a.fails[client] = f
		}
	}
	f.n++
	if f.n >= a.o.MaxFailures {
		f.lockedUntil = now.Add(a.o.Lockout)
		f.n, f.since = 0, now
		return true
	}
	return false
}

func (a *admin) replay(w http.ResponseWriter, r *http.Request)  { a.resolve(w, r, true) }
func (a *admin) discard(w http.ResponseWriter, r *http.Request) { a.resolve(w, r, false) }

func (a *admin) resolve(w http.ResponseWriter, r *http.Request, replay bool) {
	q := r.URL.Query()
	proj, agg := q.Get("projection"), q.Get("aggregate")
	if proj == "" || agg == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "projection and aggregate query parameters are required"})
		return
	}
	gen := 0
	if s := q.Get("generation"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "generation must be a positive integer"})
			return
		}
		gen = n
	}
	if a.o.Admin == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "this process runs no projectors"})
		return
	}
	var res any
	var err error
	action := "discard"
	if replay {
		action = "replay"
		res, err = a.o.Admin.ReplayParked(r.Context(), proj, gen, agg)
	} else {
		res, err = a.o.Admin.DiscardParked(r.Context(), proj, gen, agg)
	}
	if err != nil {
		status := http.StatusInternalServerError
		var he *Error
		if errors.As(err, &he) {
			status = he.Status
		}
		a.o.Log.Warn("admin "+action+" failed", "projection", proj, "generation", gen, "aggregate", agg, "err", err)
		writeJSON(w, status, map[string]any{"error": err.Error(), "result": res})
		return
	}
	a.o.Log.Info("admin "+action, "projection", proj, "generation", gen, "aggregate", agg, "result", res)
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// slogPrinter adapts slog to promhttp's error logger.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Warn("metrics: " + fmt.Sprint(v...)) }
