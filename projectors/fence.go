package projectors

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
)

// Fencing: a member that lost a partition (frozen past its session timeout,
// partitioned away, or still shutting down after leaving the group) must not
// land rows for it. Kafka's group protocol cannot stop a process that does not
// know it was replaced, and ClickHouse has no transactions, so the fence is
// built into ClickHouse itself (see DESIGN.md, "Fencing stale members"):
//
//  1. On assignment the new owner records a claim in _reel_owners with an
//     epoch higher than every earlier claim of the partition (seq in the high
//     32 bits, a random nonce in the low ones, so two claims never tie).
//  2. Every write of the runtime goes to a Null-engine inbox; a materialized
//     view copies a block to the real table only if its rows carry the
//     partition's latest epoch. A stale member's insert that starts after
//     the claim is dropped by the server, whatever the client's timing.
//  3. An insert that had already passed the guard when the claim landed is
//     still running on the server: the owner kills and waits out every
//     insert of the partition tagged with another epoch (log_comment) before
//     it reads the positions. Afterwards nothing stale can land.
//  4. The claim records the topic's ID: a generation that projected an
//     earlier incarnation of a topic refuses the new one.

// ownersTable holds every claim of a partition of a generation.
const ownersTable = "_reel_owners"

// inboxSuffix and guardSuffix name the inbox and guard view of a table.
const (
	inboxSuffix = "__in"
	guardSuffix = "__fence"
)

// epochColumn is the inbox column every write carries: the writer's claim.
var epochColumn = Column{Name: "_epoch", Type: "UInt64"}

var ownersDDL = `CREATE TABLE IF NOT EXISTS ` + ownersTable + ` (
  proj LowCardinality(String), generation UInt32, topic LowCardinality(String), part UInt32,
  epoch UInt64, topic_id String, member String, host String, kafka_generation Int32,
  claimed_at DateTime64(6, 'UTC')
) ENGINE = MergeTree ORDER BY (proj, generation, topic, part, epoch)`

// latestClaims is the set of (topic, partition, epoch) that may write into a
// generation: the highest epoch of each partition.
func latestClaims(proj string, gen int) string {
	return fmt.Sprintf("SELECT topic, part, max(epoch) FROM %s WHERE proj = %s AND generation = %d GROUP BY topic, part",
		ownersTable, quote(proj), gen)
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
// and epoch must be a latest claim.
func tableGuard(proj string, gen int) string {
	return "(_topic, _partition, _epoch) IN (" + latestClaims(proj, gen) + ")"
}

// sharedGuard is the guard of the system tables all projections share
// (checkpoints, resolved parked events).
const sharedGuard = `(proj, generation, topic, part, _epoch) IN (SELECT proj, generation, topic, part, max(epoch) FROM ` +
	ownersTable + ` GROUP BY proj, generation, topic, part)`

func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// fenceComment tags a write of partition k under epoch, so that the next
// owner can find it in system.processes.
func fenceComment(proj string, gen int, k tp, epoch uint64) string {
	return fencePrefix(proj, gen, k) + fmt.Sprint(epoch)
}

func fencePrefix(proj string, gen int, k tp) string {
	return fmt.Sprintf("reel-fence/%s/g%d/%s/%d@", proj, gen, k.topic, k.partition)
}

// fencedCtx adds the settings every guarded write carries: Reel's write
// settings (chclient.WriteSettings: a synchronous, deduplicated insert —
// an asynchronous one would be buffered past the drain and would ignore the
// deduplication token) and the fence tag.
func fencedCtx(ctx context.Context, proj string, gen int, k tp, epoch uint64, extra clickhouse.Settings) context.Context {
	s := clickhouse.Settings{"log_comment": fenceComment(proj, gen, k, epoch)}
	for n, v := range extra {
		s[n] = v
	}
	return chclient.WriteContext(ctx, s)
}

// claim is one partition's claim by this member.
type claim struct {
	k       tp
	epoch   uint64
	topicID string // hex; "" when the broker did not say
}

// ErrFenced reports that another member claimed the partition after this
// one: its writes are dropped by the guard and it must stop.
var ErrFenced = errors.New("partition claimed by another member")

// ErrTopicRecreated reports that the generation projected an earlier
// incarnation of a topic (deleted and created again under the same name).
var ErrTopicRecreated = errors.New("topic re-created")

// claimPartitions records a claim for every partition in ks with an epoch
// above every earlier claim, then drains the inserts of earlier owners. It
// returns the claims and, per topic, the IDs earlier claims recorded.
func claimPartitions(ctx context.Context, conn driver.Conn, l *Layout, log *slog.Logger, ks []tp, topicIDs map[string]string, member string, kgen int32) (map[tp]claim, map[string][]string, error) {
	proj, gen := l.Projection.Name, l.Generation
	seqs := map[tp]uint64{}
	seen := map[string][]string{}
	rows, err := conn.Query(ctx, "SELECT topic, part, max(epoch), groupUniqArray(topic_id) FROM "+ownersTable+
		" WHERE proj = ? AND generation = ? GROUP BY topic, part", proj, uint32(gen))
	if err != nil {
		return nil, nil, fmt.Errorf("read claims: %w", err)
	}
	for rows.Next() {
		var topic string
		var part uint32
		var epoch uint64
		var ids []string
		if err := rows.Scan(&topic, &part, &epoch, &ids); err != nil {
			rows.Close()
			return nil, nil, err
		}
		seqs[tp{topic, int32(part)}] = epoch >> 32
		for _, id := range ids {
			if id != "" && !slices.Contains(seen[topic], id) {
				seen[topic] = append(seen[topic], id)
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read claims: %w", err)
	}

	host, _ := os.Hostname()
	now := time.Now().UTC()
	out := make(map[tp]claim, len(ks))
	var q strings.Builder
	q.WriteString("INSERT INTO " + ownersTable + " (proj, generation, topic, part, epoch, topic_id, member, host, kafka_generation, claimed_at) VALUES ")
	args := make([]any, 0, 10*len(ks))
	for i, k := range ks {
		c := claim{k: k, epoch: (seqs[k]+1)<<32 | uint64(rand.Uint32()), topicID: topicIDs[k.topic]}
		out[k] = c
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, proj, uint32(gen), k.topic, uint32(k.partition), c.epoch, c.topicID, member, host, kgen, now)
	}
	sctx := chclient.WriteContext(ctx, nil)
	if err := conn.Exec(sctx, q.String(), args...); err != nil {
		return nil, nil, fmt.Errorf("record claims: %w", err)
	}
	if err := drainStale(ctx, conn, l, log, out); err != nil {
		return nil, nil, err
	}
	return out, seen, nil
}

// drainStale kills every running insert of the claimed partitions tagged
// with another epoch and waits until none runs: such an insert may have
// passed the guard before the claim landed. A killed insert that is still
// receiving its data ends when its client sends more or the server's
// receive timeout fires.
func drainStale(ctx context.Context, conn driver.Conn, l *Layout, log *slog.Logger, claims map[tp]claim) error {
	var prefixes, own []string
	for k, c := range claims {
		prefixes = append(prefixes, fencePrefix(l.Projection.Name, l.Generation, k))
		own = append(own, fenceComment(l.Projection.Name, l.Generation, k, c.epoch))
	}
	where := "arrayExists(p -> startsWith(Settings['log_comment'], p), ?) AND NOT has(?, Settings['log_comment'])"
	rows, err := conn.Query(ctx, "KILL QUERY WHERE "+where+" ASYNC", prefixes, own)
	if err != nil {
		return fmt.Errorf("stop inserts of earlier owners: %w", err)
	}
	killed := 0
	for rows.Next() {
		killed++
	}
	rows.Close()
	if killed > 0 {
		log.Info("stopped inserts of the partitions' earlier owners", "queries", killed)
	}
	start := time.Now()
	warned := false
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE "+where, prefixes, own).Scan(&n); err != nil {
			return fmt.Errorf("wait for inserts of earlier owners: %w", err)
		}
		if n == 0 {
			return nil
		}
		if !warned && time.Since(start) > 2*time.Second {
			warned = true
			log.Warn("waiting for inserts of the partitions' earlier owners to end before reading positions", "running", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// currentEpoch is the partition's latest claim (0: none).
func currentEpoch(ctx context.Context, conn driver.Conn, l *Layout, k tp) (uint64, error) {
	var e uint64
	err := conn.QueryRow(ctx, "SELECT max(epoch) FROM "+ownersTable+" WHERE proj = ? AND generation = ? AND topic = ? AND part = ?",
		l.Projection.Name, uint32(l.Generation), k.topic, uint32(k.partition)).Scan(&e)
	return e, err
}

func topicIDString(id [16]byte) string {
	if id == ([16]byte{}) {
		return ""
	}
	return hex.EncodeToString(id[:])
}
