package chclient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// writeSettings are the query settings Reel's exactly-once argument rests on
// (DESIGN.md, "Exactly-once"); every write states them rather than trusting
// the server's defaults, which differ between servers and versions
// (ClickHouse 26.7 defaults to async_insert=1, async_insert_deduplicate=0).
var writeSettings = map[string]string{
	// A synchronous insert: an asynchronous one is buffered past the fence's
	// drain and ignores insert_deduplication_token.
	"async_insert": "0",
	// A retried insert with the same token is stored once.
	"insert_deduplicate": "1",
	// The token reaches the tables behind the guard views (every runtime
	// write goes through an inbox and a materialized view).
	"deduplicate_blocks_in_dependent_materialized_views": "1",
	// A failing guard view fails the insert instead of dropping its rows
	// while the insert reports success.
	"materialized_views_ignore_errors": "0",
}

// WriteSettings returns the settings every write of Reel carries, plus
// extra (which may not override them).
func WriteSettings(extra clickhouse.Settings) clickhouse.Settings {
	s := make(clickhouse.Settings, len(writeSettings)+len(extra))
	for n, v := range extra {
		s[n] = v
	}
	for n, v := range writeSettings {
		s[n] = v
	}
	return s
}

// WriteContext returns ctx with WriteSettings(extra) as its query settings
// (replacing settings ctx carried: clickhouse-go keeps one set per context).
func WriteContext(ctx context.Context, extra clickhouse.Settings) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(WriteSettings(extra)))
}

// ErrUnsafeSettings reports a server or table whose settings break an
// invariant Reel relies on; the message names the setting and the fix.
var ErrUnsafeSettings = errors.New("unsafe ClickHouse settings")

// UnsafeSettingsError lists what is unsafe.
type UnsafeSettingsError struct {
	Problems []string
}

func (e *UnsafeSettingsError) Error() string {
	return "unsafe ClickHouse settings, refusing to write (exactly-once depends on them, see DESIGN.md):\n  - " + strings.Join(e.Problems, "\n  - ")
}

func (e *UnsafeSettingsError) Is(target error) bool { return target == ErrUnsafeSettings }

// CheckServer verifies that the server applies Reel's write settings: it
// reads them back from system.settings within a context that sets them, so
// a server that lacks one (too old), a settings profile that pins another
// value (constraints, readonly) or a user not allowed to change settings is
// refused before anything is written. It returns the server's defaults
// that differ from Reel's (for the log: Reel overrides them per write).
func CheckServer(ctx context.Context, conn driver.Conn) (overridden map[string]string, err error) {
	names := make([]string, 0, len(writeSettings))
	for n := range writeSettings {
		names = append(names, n)
	}
	sort.Strings(names)
	defaults, err := readSettings(ctx, conn, names)
	if err != nil {
		return nil, err
	}
	applied, err := readSettings(WriteContext(ctx, nil), conn, names)
	if err != nil {
		if Classify(err) == Permanent {
			return nil, &UnsafeSettingsError{Problems: []string{fmt.Sprintf("the server refuses Reel's write settings %v: %v (allow the user to change them: settings profile, constraints, readonly)", writeSettings, err)}}
		}
		return nil, err
	}
	var problems []string
	overridden = map[string]string{}
	for _, n := range names {
		want := writeSettings[n]
		got, ok := applied[n]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("setting %s is unknown to this server; Reel needs %s = %s (use a newer ClickHouse)", n, n, want))
		case got != want:
			problems = append(problems, fmt.Sprintf("setting %s = %s although Reel's writes set %s (a settings profile or constraint overrides it)", n, got, want))
		}
		if d, ok := defaults[n]; ok && d != want {
			overridden[n] = d
		}
	}
	if len(problems) > 0 {
		return nil, &UnsafeSettingsError{Problems: problems}
	}
	return overridden, nil
}

func readSettings(ctx context.Context, conn driver.Conn, names []string) (map[string]string, error) {
	rows, err := conn.Query(ctx, "SELECT name, value FROM system.settings WHERE name IN (?)", names)
	if err != nil {
		return nil, fmt.Errorf("read server settings: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, rows.Err()
}
