package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/projectors/projection"
)

// Lag is how many offsets of a partition a generation has not made durable
// yet: end is the partition's end offset (the next offset to be written),
// applied the highest offset durable in every table (-1: none), start the
// first offset the generation applies (0 for a generation that reads the
// whole topic; a rebuild's replay may start later). It is the one
// definition of lag: `reel status`, the reel_projector_lag_offsets metric,
// rebuild progress and the load test use it.
func Lag(end, applied, start int64) int64 { return max(0, end-max(applied+1, start)) }

// Lag is how far the partition is behind end (see Lag).
func (p PartitionProgress) Lag(end int64) int64 { return Lag(end, p.Applied, 0) }

// PartitionProgress is how far a generation has applied one partition.
type PartitionProgress struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Applied   int64     `json:"applied_offset"`  // highest offset durable in every table
	EventTime time.Time `json:"last_event_time"` // newest _event_ts of any table (zero: none)
}

// QueryProgress returns, per partition, the applied offset of a generation
// (AppliedPositions by its stored definition: group-wide, whichever
// replica wrote) and the newest event time its tables hold; nothing while
// the generation's tables are not all created yet.
func QueryProgress(ctx context.Context, conn driver.Conn, p *projection.Projection, gen int) ([]PartitionProgress, error) {
	var ok uint8
	if err := conn.QueryRow(ctx, "EXISTS TABLE "+CheckpointsTable).Scan(&ok); err != nil || ok == 0 {
		return nil, err
	}
	l, err := StoredLayout(ctx, conn, p, gen)
	if err != nil {
		return nil, err
	}
	applied, err := AppliedPositions(ctx, conn, l)
	if unknownTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read positions of %s g%d: %w", p.Name, gen, err)
	}
	var out []PartitionProgress
	for topic, parts := range applied {
		for part, off := range parts {
			out = append(out, PartitionProgress{Topic: topic, Partition: part, Applied: off})
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.SortFunc(out, func(a, b PartitionProgress) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	idx := map[TopicPartition]int{}
	for i, pp := range out {
		idx[TopicPartition{pp.Topic, pp.Partition}] = i
	}
	parts := make([]string, 0, len(l.Tables))
	for _, t := range l.Tables {
		parts = append(parts, "SELECT _topic AS t, _partition AS p, max(_event_ts) AS ts FROM "+t.Name+" GROUP BY _topic, _partition")
	}
	rows, err := conn.Query(ctx, "SELECT t, p, max(ts) FROM ("+strings.Join(parts, " UNION ALL ")+") GROUP BY t, p")
	if unknownTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read event times of %s g%d: %w", p.Name, gen, err)
	}
	defer rows.Close()
	for rows.Next() {
		var topic string
		var part uint32
		var ts time.Time
		if err := rows.Scan(&topic, &part, &ts); err != nil {
			return nil, err
		}
		if i, ok := idx[TopicPartition{topic, int32(part)}]; ok {
			out[i].EventTime = ts.UTC()
		}
	}
	return out, rows.Err()
}
