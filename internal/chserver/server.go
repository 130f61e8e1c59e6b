package chserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config configures a Server.
type Config struct {
	// Path is the persistent data directory. Required.
	Path string
	// Lib is the libchdb.so to load. Default: see LibPath.
	Lib string
	// PoolSize is the number of engine connections, i.e. statements that
	// run at once; further requests wait. Default 16: a projector's
	// partition workers insert concurrently, and with 4 its inserts
	// queued for a connection.
	PoolSize int
	// MaxQuerySize bounds query text read from a request body (data after
	// INSERT … FORMAT is streamed and not bounded). Default 64 MiB.
	MaxQuerySize int
	// ReceiveTimeout bounds the wait for each chunk of an INSERT's data, like
	// ClickHouse's http_receive_timeout: a client that stops sending (frozen,
	// partitioned away) does not hold an insert open for good. Default 30s.
	ReceiveTimeout time.Duration
	// Users are the accounts requests must authenticate as (HTTP basic
	// auth, X-ClickHouse-User/-Key, or user/password parameters), each a
	// writer or read-only. Default: none, and every request is accepted as
	// the unrestricted default user (loopback development and tests).
	Users []User
	// Logger receives request errors and lifecycle events. Default: discard.
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.Path == "" {
		return errors.New("chserver: Config.Path (data directory) is required")
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 16
	}
	if c.MaxQuerySize <= 0 {
		c.MaxQuerySize = 64 << 20
	}
	if c.ReceiveTimeout <= 0 {
		c.ReceiveTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Server answers ClickHouse's HTTP interface with the embedded engine. It is
// an http.Handler; Close releases the engine connections.
type Server struct {
	cfg      Config
	log      *slog.Logger
	pool     chan *session
	all      []*session
	info     serverInfo
	users    map[string]User
	defaults map[string]string // settings' default values (read-only users may "set" them)

	closeOnce sync.Once
}

// serverInfo is what clickhouse-go's connection check asks for.
type serverInfo struct {
	displayName, version, timezone string
}

// New opens Config.PoolSize engine connections on Config.Path.
func New(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Path, 0o755); err != nil {
		return nil, fmt.Errorf("chserver: data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, pool: make(chan *session, cfg.PoolSize)}
	if len(cfg.Users) > 0 {
		s.users = map[string]User{}
		for _, u := range cfg.Users {
			if _, dup := s.users[u.Name]; dup || u.Name == "" {
				return nil, fmt.Errorf("chserver: user %q empty or listed twice", u.Name)
			}
			s.users[u.Name] = u
		}
	}
	for range cfg.PoolSize {
		c, err := openEngine(cfg.Lib, cfg.Path)
		if err != nil {
			s.Close()
			return nil, err
		}
		sess := &session{c: c, db: "default", set: map[string]string{}}
		s.all = append(s.all, sess)
		s.pool <- sess
	}
	out, _, err := s.all[0].c.query("SELECT displayName(), version(), timezone()", "TabSeparated", nil)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("chserver: engine info: %w", err)
	}
	f := strings.Split(strings.TrimRight(string(out), "\n"), "\t")
	if len(f) != 3 {
		s.Close()
		return nil, fmt.Errorf("chserver: engine info: unexpected %q", out)
	}
	s.info = serverInfo{displayName: f[0], version: f[1], timezone: f[2]}
	if len(s.users) > 0 {
		out, _, err := s.all[0].c.query("SELECT name, value FROM system.settings", "TabSeparatedRaw", nil)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("chserver: settings: %w", err)
		}
		s.defaults = map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			if n, v, ok := strings.Cut(line, "\t"); ok {
				s.defaults[n] = v
			}
		}
	}
	s.log.Info("engine ready", "path", cfg.Path, "version", s.info.version, "pool", cfg.PoolSize)
	return s, nil
}

// Version is the engine's version() (e.g. 26.7.2.1).
func (s *Server) Version() string { return s.info.version }

// Close closes every engine connection, waiting for statements that run.
// Stop serving HTTP first (http.Server.Shutdown).
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		for range s.all {
			sess := <-s.pool
			sess.c.close()
		}
	})
	return nil
}

func (s *Server) acquire(ctx context.Context) (*session, error) {
	select {
	case sess := <-s.pool:
		return sess, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Server) release(sess *session) { s.pool <- sess }

// session is an engine connection plus the state a request may change on
// it: the current database and settings. Requests carry both in the URL;
// the session applies only the difference to what the previous request
// left, so a client that always sends the same settings pays nothing.
type session struct {
	c   engineConn
	db  string
	set map[string]string // settings changed from their defaults
}

// prepare makes the connection's database and settings those of the
// request.
func (sess *session) prepare(db string, settings map[string]string) error {
	if db == "" {
		db = "default"
	}
	if db != sess.db {
		if _, _, err := sess.c.query("USE "+quoteIdent(db), "TabSeparated", nil); err != nil {
			return err
		}
		sess.db = db
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		if cur, ok := sess.set[k]; !ok || cur != settings[k] {
			parts = append(parts, k+" = "+quoteString(settings[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(sess.set)) {
		if _, ok := settings[k]; !ok {
			parts = append(parts, k+" = DEFAULT")
		}
	}
	if len(parts) == 0 {
		return nil
	}
	if _, _, err := sess.c.query("SET "+strings.Join(parts, ", "), "TabSeparated", nil); err != nil {
		// The statement may have applied in part; put every setting we
		// know of back to its default, one by one, so the session is clean.
		for k := range sess.set {
			_, _, _ = sess.c.query("SET "+k+" = DEFAULT", "TabSeparated", nil)
		}
		for k := range settings {
			_, _, _ = sess.c.query("SET "+k+" = DEFAULT", "TabSeparated", nil)
		}
		clear(sess.set)
		return err
	}
	clear(sess.set)
	maps.Copy(sess.set, settings)
	return nil
}
