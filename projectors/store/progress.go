package store

import (
	"context"
	"fmt"
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

// PartitionProgress is how far a generation has applied one partition, as
// its checkpoints record.
type PartitionProgress struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Applied   int64     `json:"applied_offset"`  // highest offset durable in every table
	EventTime time.Time `json:"last_event_time"` // newest _event_ts of any table (zero: none)
	UpdatedAt time.Time `json:"updated_at"`      // when the last batch's checkpoint was written
}

// QueryProgress returns, per partition, the applied offset a generation's
// checkpoints record (every replica writes them, so this is group-wide) and
// the newest event time its tables hold.
func QueryProgress(ctx context.Context, conn driver.Conn, p *projection.Projection, gen int) ([]PartitionProgress, error) {
	var ok uint8
	if err := conn.QueryRow(ctx, "EXISTS TABLE "+CheckpointsTable).Scan(&ok); err != nil || ok == 0 {
		return nil, err
	}
	rows, err := conn.Query(ctx, "SELECT topic, part, min(o), max(u) FROM (SELECT tbl, topic, part, max(off) AS o, max(updated_at) AS u FROM "+CheckpointsTable+
		" WHERE proj = ? AND generation = ? GROUP BY tbl, topic, part) GROUP BY topic, part ORDER BY topic, part", p.Name, uint32(gen))
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of %s g%d: %w", p.Name, gen, err)
	}
	var out []PartitionProgress
	idx := map[TopicPartition]int{}
	for rows.Next() {
		var pp PartitionProgress
		var part uint32
		var off uint64
		if err := rows.Scan(&pp.Topic, &part, &off, &pp.UpdatedAt); err != nil {
			rows.Close()
			return nil, err
		}
		pp.Partition, pp.Applied = int32(part), int64(off)
		idx[TopicPartition{pp.Topic, pp.Partition}] = len(out)
		out = append(out, pp)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}
	l := NewLayout(p, gen)
	parts := make([]string, 0, len(l.Tables))
	for _, t := range l.Tables {
		parts = append(parts, "SELECT _topic AS t, _partition AS p, max(_event_ts) AS ts FROM "+t.Name+" GROUP BY _topic, _partition")
	}
	rows, err = conn.Query(ctx, "SELECT t, p, max(ts) FROM ("+strings.Join(parts, " UNION ALL ")+") GROUP BY t, p")
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
