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
	"net/http"
	"strconv"
	"strings"
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
}

// Handler returns the operations mux.
func Handler(o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 3 * time.Second
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
	a := &admin{o: o, sum: sha256.Sum256([]byte(o.Token))}
	mux.HandleFunc("POST /admin/dlq/replay", a.guard(a.replay))
	mux.HandleFunc("POST /admin/dlq/discard", a.guard(a.discard))
	return mux
}

type admin struct {
	o   Options
	sum [32]byte
}

// guard enforces the bearer token. Hashing both sides first makes the
// comparison constant-time regardless of the tokens' lengths.
func (a *admin) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.o.Token == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "admin endpoints are disabled: no admin token configured (http.adminTokenFile or REEL_ADMIN_TOKEN)"})
			return
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(got[:], a.sum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reel-admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			a.o.Log.Warn("admin request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "token_given", ok)
			return
		}
		h(w, r)
	}
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
