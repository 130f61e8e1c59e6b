package store

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
)

// durableSettings make a generation table fsync every inserted part and its
// directory before the insert returns (MergeTree table settings: ClickHouse
// 26.7 refuses them as query settings, so they are set on the tables).
const durableSettings = "fsync_after_insert = 1, fsync_part_directory = 1"

// MakeDurable turns durable mode on for every table of the generation
// (idempotent; tables created before durable mode was chosen included).
func MakeDurable(ctx context.Context, conn driver.Conn, l *Layout) error {
	for _, t := range l.Tables {
		if err := conn.Exec(ctx, "ALTER TABLE "+t.Name+" MODIFY SETTING "+durableSettings); err != nil {
			return fmt.Errorf("durable mode for %s: %w", t.Name, err)
		}
	}
	return nil
}

var tableSettingRe = regexp.MustCompile(`\b(non_replicated_deduplication_window|fsync_after_insert|fsync_part_directory)\s*=\s*(\d+)`)

// CheckSettings refuses to run a generation on a server or tables whose
// settings break Reel's invariants: the server must apply Reel's write
// settings (chclient.CheckServer), every generation table must keep enough
// deduplication tokens for a retried insert to be stored once and have its
// inbox and guard view, and with durable on, fsync its parts. The error
// matches chclient.ErrUnsafeSettings and names each problem and its fix.
func CheckSettings(ctx context.Context, conn driver.Conn, l *Layout, durable bool, log *slog.Logger) error {
	overridden, err := chclient.CheckServer(ctx, conn)
	if err != nil {
		return err
	}
	if len(overridden) > 0 && log != nil {
		log.Info("server defaults differ from Reel's write settings; every write overrides them", "server_defaults", overridden)
	}
	names := make([]string, 0, 3*len(l.Tables))
	for _, t := range l.Tables {
		names = append(names, t.Name, t.Name+inboxSuffix, t.Name+guardSuffix)
	}
	rows, err := conn.Query(ctx, "SELECT name, engine, create_table_query FROM system.tables WHERE database = currentDatabase() AND name IN (?)", names)
	if err != nil {
		return fmt.Errorf("read table settings: %w", err)
	}
	type info struct{ engine, ddl string }
	found := map[string]info{}
	for rows.Next() {
		var n, e, q string
		if err := rows.Scan(&n, &e, &q); err != nil {
			rows.Close()
			return err
		}
		found[n] = info{e, q}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var problems []string
	for _, t := range l.Tables {
		ti, ok := found[t.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("table %s is missing", t.Name))
			continue
		}
		set := map[string]int{}
		for _, m := range tableSettingRe.FindAllStringSubmatch(ti.ddl, -1) {
			set[m[1]], _ = strconv.Atoi(m[2])
		}
		if w := set["non_replicated_deduplication_window"]; w < dedupWindow {
			problems = append(problems, fmt.Sprintf("table %s has non_replicated_deduplication_window = %d: a retried insert could be stored twice (fix: ALTER TABLE %s MODIFY SETTING non_replicated_deduplication_window = %d)",
				t.Name, w, t.Name, dedupWindow))
		}
		if durable && (set["fsync_after_insert"] != 1 || set["fsync_part_directory"] != 1) {
			problems = append(problems, fmt.Sprintf("durable mode is on but table %s does not fsync its inserts (fix: ALTER TABLE %s MODIFY SETTING %s)", t.Name, t.Name, durableSettings))
		}
		if in, ok := found[t.Name+inboxSuffix]; !ok || in.engine != "Null" {
			problems = append(problems, fmt.Sprintf("inbox %s%s is missing or not a Null table (restart to recreate it)", t.Name, inboxSuffix))
		}
		if g, ok := found[t.Name+guardSuffix]; !ok || g.engine != "MaterializedView" {
			problems = append(problems, fmt.Sprintf("guard view %s%s is missing: writes into the inbox would be dropped (restart to recreate it)", t.Name, guardSuffix))
		}
	}
	if len(problems) > 0 {
		return &chclient.UnsafeSettingsError{Problems: problems}
	}
	return nil
}
