package projectors

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/projectors/store"
)

// Fencing (the logic; its SQL is in projectors/store): a member that lost a partition (frozen past its session timeout,
// partitioned away, or still shutting down after leaving the group) must not
// land rows for it. Kafka's group protocol cannot stop a process that does not
// know it was replaced, and ClickHouse has no transactions, so the fence is
// built into ClickHouse itself (see DESIGN.md, "Fencing stale members"):
//
//  1. On assignment the new owner records a claim in _reel_owners with an
//     epoch higher than every earlier claim of the partition (seq in the high
//     32 bits, a random nonce in the low ones, so two claims never tie).
//  2. It then adds every earlier claim to _reel_superseded (a Set table).
//     Every write of the runtime goes to a Null-engine inbox; a materialized
//     view copies a block to the real table only if its rows' epoch is not
//     superseded. A stale member's insert that starts after that is dropped
//     by the server, whatever the client's timing.
//  3. An insert that had already passed the guard when the claim landed is
//     still running on the server: the owner kills and waits out every
//     insert of the partition tagged with another epoch (log_comment) before
//     it reads the positions. Afterwards nothing stale can land.
//  4. The claim records the topic's ID: a generation that projected an
//     earlier incarnation of a topic refuses the new one.

// fenceComment tags a write of partition k under epoch, so that the next
// owner can find it in system.processes.
func fenceComment(proj string, gen int, k tp, epoch uint64) string {
	return fencePrefix(proj, gen, k) + fmt.Sprint(epoch)
}

// fenceSeparator joins the tags of an insert holding rows of several
// partitions (group.go); store.KillStaleInserts looks for a tag between
// separators.
const fenceSeparator = store.FenceTagSeparator

func fencePrefix(proj string, gen int, k tp) string {
	return fmt.Sprintf("reel-fence/%s/g%d/%s/%d@", proj, gen, k.Topic, k.Partition)
}

// fencedCtx adds the settings every guarded write carries: Reel's write
// settings (chclient.WriteSettings: a synchronous, deduplicated insert —
// an asynchronous one would be buffered past the drain and would ignore the
// deduplication token) and the fence tag.
func fencedCtx(ctx context.Context, proj string, gen int, k tp, epoch uint64, extra clickhouse.Settings) context.Context {
	return taggedCtx(ctx, fenceComment(proj, gen, k, epoch), extra)
}

// taggedCtx is fencedCtx for a write tagged with comment: one fence tag,
// or a group insert's tags joined by fenceSeparator.
func taggedCtx(ctx context.Context, comment string, extra clickhouse.Settings) context.Context {
	s := clickhouse.Settings{"log_comment": comment}
	for n, v := range extra {
		s[n] = v
	}
	return chclient.WriteContext(ctx, s)
}

// tp is a topic partition: the key of a partition's worker, claim and
// positions.
type tp = store.TopicPartition

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
func claimPartitions(ctx context.Context, conn driver.Conn, l *store.Layout, log *slog.Logger, ks []tp, topicIDs map[string]string, member string, kgen int32) (map[tp]claim, map[string][]string, error) {
	latest, seen, err := store.LatestClaims(ctx, conn, l)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[tp]claim, len(ks))
	rows := make([]store.Claim, 0, len(ks))
	for _, k := range ks {
		c := claim{k: k, epoch: (latest[k]>>32+1)<<32 | uint64(rand.Uint32()), topicID: topicIDs[k.Topic]}
		out[k] = c
		rows = append(rows, store.Claim{TopicPartition: k, Epoch: c.epoch, TopicID: c.topicID})
	}
	if err := store.RecordClaims(ctx, conn, l, member, kgen, rows); err != nil {
		return nil, nil, err
	}
	if err := store.Supersede(ctx, conn, l); err != nil {
		return nil, nil, err
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
func drainStale(ctx context.Context, conn driver.Conn, l *store.Layout, log *slog.Logger, claims map[tp]claim) error {
	var prefixes, own []string
	for k, c := range claims {
		prefixes = append(prefixes, fencePrefix(l.Projection.Name, l.Generation, k))
		own = append(own, fenceComment(l.Projection.Name, l.Generation, k, c.epoch))
	}
	killed, err := store.KillStaleInserts(ctx, conn, prefixes, own)
	if err != nil {
		return err
	}
	if killed > 0 {
		log.Info("stopped inserts of the partitions' earlier owners", "queries", killed)
	}
	start := time.Now()
	warned := false
	for {
		n, err := store.RunningStaleInserts(ctx, conn, prefixes, own)
		if err != nil {
			return err
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
func currentEpoch(ctx context.Context, conn driver.Conn, l *store.Layout, k tp) (uint64, error) {
	return store.CurrentEpoch(ctx, conn, l, k)
}

func topicIDString(id [16]byte) string {
	if id == ([16]byte{}) {
		return ""
	}
	return hex.EncodeToString(id[:])
}
