//go:build chdb

// Command reel-chdb is Reel's embedded ClickHouse: the real ClickHouse engine
// (libchdb) behind a ClickHouse-compatible HTTP interface on loopback, for
// clickhouse-go/v2 over HTTP and curl.
//
//	bash scripts/chdb.sh install
//	$(bash scripts/chdb.sh path) -listen 127.0.0.1:0 -path /tmp/reel-ch
//	# prints REEL_CHDB_LISTEN=127.0.0.1:PORT once it serves requests
//
// It is built with cgo and the chdb tag; internal/chproc starts it.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/reel-dev/reel/internal/chserver"
)

func main() {
	if err := run(); err != nil {
		slog.Error("reel-chdb", "err", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8123", "address of the HTTP interface (port 0: any free port)")
	path := flag.String("path", "", "persistent data directory (required)")
	pool := flag.Int("pool", 16, "engine connections, i.e. statements that run at once")
	lib := flag.String("lib", "", "libchdb.so to load (default: REEL_CHDB_LIB, the installed one, then $REEL_CACHE/chdb)")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	certFile := flag.String("tls-cert", "", "PEM certificate (chain) to serve HTTPS with; with -tls-key")
	keyFile := flag.String("tls-key", "", "PEM private key of -tls-cert")
	usersFile := flag.String("users", "", `users file: lines "name password readonly|write" (default: no authentication)`)
	flag.Parse()
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	if *path == "" {
		return errors.New("-path is required")
	}

	if (*certFile == "") != (*keyFile == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	var users []chserver.User
	if *usersFile != "" {
		f, err := os.Open(*usersFile)
		if err != nil {
			return err
		}
		users, err = chserver.ParseUsers(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *usersFile, err)
		}
	}
	var tlsCfg *tls.Config
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	srv, err := chserver.New(chserver.Config{Path: *path, Lib: *lib, PoolSize: *pool, Users: users, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "path", *path, "engine", srv.Version(), "tls", tlsCfg != nil, "users", len(users))
	fmt.Printf("REEL_CHDB_LISTEN=%s\n", ln.Addr().String())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	srv.Close()
	log.Info("stopped")
	return nil
}
