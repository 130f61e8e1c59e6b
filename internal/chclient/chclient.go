// Package chclient opens ClickHouse connections from a DSN for either of
// ClickHouse's protocols, native (clickhouse://host:9000/db) or HTTP
// (http://host:8123/db, https://…).
//
//	conn, err := chclient.Open(ctx, "http://127.0.0.1:8123/default")
package chclient

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Options parses dsn into clickhouse-go options.
// An https:// DSN means TLS: secure=true is implied (clickhouse-go
// refuses "https without TLS" otherwise).
func Options(dsn string) (*clickhouse.Options, error) {
	if u, err := url.Parse(dsn); err == nil && u.Scheme == "https" && !u.Query().Has("secure") {
		q := u.Query()
		q.Set("secure", "true")
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("clickhouse DSN %q: %w", Redact(dsn), err)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	return opts, nil
}

// Open connects and pings. The error names the (redacted) address.
func Open(ctx context.Context, dsn string) (driver.Conn, error) {
	opts, err := Options(dsn)
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", Redact(dsn), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ClickHouse not reachable at %s: %w (start the embedded one with `bash scripts/chdb.sh install` and `reel dev`, or set REEL_CLICKHOUSE_DSN)", Redact(dsn), err)
	}
	return conn, nil
}

// WithDatabase returns dsn with its database path replaced.
func WithDatabase(dsn, db string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	return u.String(), nil
}

// Database returns the database a DSN names ("default" when none).
func Database(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "default"
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		return db
	}
	return "default"
}

// Redact hides the password of a DSN for logs and errors.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<unparsable DSN>"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
