package store

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/projection"
)

// The SQL of the fence (see DESIGN.md, "Fencing stale members"; the
// runtime's fence.go holds its logic): claims in _reel_owners, the inbox
// and guard view of every guarded table, and the queries that stop and wait
// out earlier owners' inserts.

// OwnersTable holds every claim of a partition of a generation.
const OwnersTable = "_reel_owners"

// inboxSuffix and guardSuffix name the inbox and guard view of a table.
const (
	inboxSuffix = "__in"
	guardSuffix = "__fence"
)

// epochColumn is the inbox column every write carries: the writer's claim.
var epochColumn = projection.Column{Name: "_epoch", Type: "UInt64"}

var ownersDDL = `CREATE TABLE IF NOT EXISTS ` + OwnersTable + ` (
  proj LowCardinality(String), generation UInt32, topic LowCardinality(String), part UInt32,
  epoch UInt64, topic_id String, member String, host String, kafka_generation Int32,
  claimed_at DateTime64(6, 'UTC')
) ENGINE = MergeTree ORDER BY (proj, generation, topic, part, epoch)`

// SupersededTable holds every claim that is no longer its partition's
// latest. It is a Set table: held in memory (and written through to disk,
// loaded when the server starts), so the guard of every insert is a hash
// lookup instead of a query of OwnersTable (measured: that query was most
// of the fence's cost per insert). Entries are only ever added.
const SupersededTable = "_reel_superseded"

var supersededDDL = `CREATE TABLE IF NOT EXISTS ` + SupersededTable + ` (
  proj String, generation UInt32, topic String, part UInt32, epoch UInt64
) ENGINE = Set`

// latestClaims is the set of (topic, partition, epoch) that may write into a
// generation: the highest epoch of each partition.
func latestClaims(proj string, gen int) string {
	return fmt.Sprintf("SELECT topic, part, max(epoch) FROM %s WHERE proj = %s AND generation = %d GROUP BY topic, part",
		OwnersTable, quote(proj), gen)
}

// guardedDDL creates the inbox of table (same columns plus _epoch, Null
// engine: it stores nothing) and the materialized view that forwards only
// blocks of the current owner. where is the guard's condition over the inbox.
func guardedDDL(table, where string) []string {
	in, mv := table+inboxSuffix, table+guardSuffix
	return []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Null", in, table),
		fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", in, epochColumn.Name, epochColumn.Type),
		fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s TO %s AS SELECT * EXCEPT (%s) FROM %s WHERE %s",
			mv, table, epochColumn.Name, in, where),
	}
}

// tableGuard is the guard of a generation table: the rows' own partition
// and epoch must not be a superseded claim. (A writer's epoch is always a
// claim it recorded; guard views created before SupersededTable existed
// test for the latest claim with a query of OwnersTable instead, which is
// equivalent and slower.)
func tableGuard(proj string, gen int) string {
	return fmt.Sprintf("(%s, %d, _topic, _partition, _epoch) NOT IN %s", quote(proj), gen, SupersededTable)
}

// sharedGuard is the guard of the system tables all projections share
// (checkpoints, resolved parked events).
const sharedGuard = `(proj, generation, topic, part, _epoch) NOT IN ` + SupersededTable

func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Claim is one partition's claim by a member.
type Claim struct {
	TopicPartition
	Epoch   uint64
	TopicID string // hex; "" when the broker did not say
}

// LatestClaims returns, per partition of the generation, the highest epoch
// claimed so far, and per topic the topic IDs the claims recorded.
func LatestClaims(ctx context.Context, conn driver.Conn, l *Layout) (map[TopicPartition]uint64, map[string][]string, error) {
	epochs := map[TopicPartition]uint64{}
	seen := map[string][]string{}
	rows, err := conn.Query(ctx, "SELECT topic, part, max(epoch), groupUniqArray(topic_id) FROM "+OwnersTable+
		" WHERE proj = ? AND generation = ? GROUP BY topic, part", l.Projection.Name, uint32(l.Generation))
	if err != nil {
		return nil, nil, fmt.Errorf("read claims: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var topic string
		var part uint32
		var epoch uint64
		var ids []string
		if err := rows.Scan(&topic, &part, &epoch, &ids); err != nil {
			return nil, nil, err
		}
		epochs[TopicPartition{topic, int32(part)}] = epoch
		for _, id := range ids {
			if id != "" && !slices.Contains(seen[topic], id) {
				seen[topic] = append(seen[topic], id)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read claims: %w", err)
	}
	return epochs, seen, nil
}

// RecordClaims inserts the claims of member (in Kafka group generation
// kgen) in one statement.
func RecordClaims(ctx context.Context, conn driver.Conn, l *Layout, member string, kgen int32, claims []Claim) error {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	var q strings.Builder
	q.WriteString("INSERT INTO " + OwnersTable + " (proj, generation, topic, part, epoch, topic_id, member, host, kafka_generation, claimed_at) VALUES ")
	args := make([]any, 0, 10*len(claims))
	for i, c := range claims {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, l.Projection.Name, uint32(l.Generation), c.Topic, uint32(c.Partition), c.Epoch, c.TopicID, member, host, kgen, now)
	}
	if err := conn.Exec(chclient.WriteContext(ctx, nil), q.String(), args...); err != nil {
		return fmt.Errorf("record claims: %w", err)
	}
	return nil
}

// Supersede adds to SupersededTable every claim of the generation that is
// not its partition's latest (and is not there yet). A new owner calls it
// after RecordClaims and before draining: from then on the guard drops the
// inserts of every earlier claim. Two claims of a partition racing are
// settled too: each claimer reads the claims after recording its own, so
// the later reader of the two sees both and supersedes the lower one.
func Supersede(ctx context.Context, conn driver.Conn, l *Layout) error {
	q := fmt.Sprintf("INSERT INTO %s (proj, generation, topic, part, epoch) SELECT proj, generation, topic, part, epoch FROM %s"+
		" WHERE proj = %s AND generation = %d AND (topic, part, epoch) NOT IN (%s) AND (proj, generation, topic, part, epoch) NOT IN %s",
		SupersededTable, OwnersTable, quote(l.Projection.Name), l.Generation, latestClaims(l.Projection.Name, l.Generation), SupersededTable)
	if err := conn.Exec(chclient.WriteContext(ctx, nil), q); err != nil {
		return fmt.Errorf("supersede earlier claims: %w", err)
	}
	return nil
}

// FenceTagSeparator joins the fence tags in the log_comment of an insert
// holding rows of several partitions.
const FenceTagSeparator = " "

// staleInserts selects running queries whose log_comment holds a tag with
// one of the prefixes (first parameter) but not the own tag at the same
// index (second): a partition's insert by an earlier owner. A log_comment
// is one tag or several joined by FenceTagSeparator.
var staleInserts = staleTagged("Settings['log_comment']")

func staleTagged(comment string) string {
	c := fmt.Sprintf("concat(%s, %s, %s)", quote(FenceTagSeparator), comment, quote(FenceTagSeparator))
	return fmt.Sprintf("arrayExists((p, o) -> position(%s, concat(%s, p)) > 0 AND position(%s, concat(%s, o, %s)) = 0, ?, ?)",
		c, quote(FenceTagSeparator), c, quote(FenceTagSeparator), quote(FenceTagSeparator))
}

// KillStaleInserts asks the server to kill, asynchronously, every running
// query tagged with one of prefixes but not with the own tag at the same
// index of own (the partition's current claim); it returns how many.
func KillStaleInserts(ctx context.Context, conn driver.Conn, prefixes, own []string) (int, error) {
	rows, err := conn.Query(ctx, "KILL QUERY WHERE "+staleInserts+" ASYNC", prefixes, own)
	if err != nil {
		return 0, fmt.Errorf("stop inserts of earlier owners: %w", err)
	}
	killed := 0
	for rows.Next() {
		killed++
	}
	rows.Close()
	return killed, nil
}

// RunningStaleInserts counts the queries KillStaleInserts selects that
// still run.
func RunningStaleInserts(ctx context.Context, conn driver.Conn, prefixes, own []string) (uint64, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE "+staleInserts, prefixes, own).Scan(&n); err != nil {
		return 0, fmt.Errorf("wait for inserts of earlier owners: %w", err)
	}
	return n, nil
}

// CurrentEpoch is the partition's latest claim (0: none).
func CurrentEpoch(ctx context.Context, conn driver.Conn, l *Layout, k TopicPartition) (uint64, error) {
	var e uint64
	err := conn.QueryRow(ctx, "SELECT max(epoch) FROM "+OwnersTable+" WHERE proj = ? AND generation = ? AND topic = ? AND part = ?",
		l.Projection.Name, uint32(l.Generation), k.Topic, uint32(k.Partition)).Scan(&e)
	return e, err
}
