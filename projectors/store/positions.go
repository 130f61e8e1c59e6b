package store

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Positions: how far each table of a generation holds each partition (see
// DESIGN.md, "Exactly-once effects"), and the aggregates parked in it.

// TopicPartition is a partition of a topic: the runtime's partition key.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// positionsSQL reads a table's highest offset per partition; the
// table's positions projection answers it.
func positionsSQL(table string) string {
	return "SELECT _topic, _partition, max(_offset) FROM " + table + " GROUP BY _topic, _partition"
}

// MaxOffsets returns the highest _offset a generation table holds per
// partition (its rows only, not its checkpoint).
func MaxOffsets(ctx context.Context, conn driver.Conn, table string) (map[TopicPartition]int64, error) {
	rows, err := conn.Query(ctx, positionsSQL(table))
	if err != nil {
		return nil, fmt.Errorf("read positions of %s: %w", table, err)
	}
	return scanPositions(rows)
}

// scanPositions reads rows of (topic, partition, offset) and closes them.
func scanPositions(rows driver.Rows) (map[TopicPartition]int64, error) {
	defer rows.Close()
	out := map[TopicPartition]int64{}
	for rows.Next() {
		var topic string
		var part uint32
		var off uint64
		if err := rows.Scan(&topic, &part, &off); err != nil {
			return nil, err
		}
		out[TopicPartition{topic, int32(part)}] = int64(off)
	}
	return out, rows.Err()
}

// ReadPositions returns, per topic partition and per physical table, the
// highest offset that table holds: max(_offset) of its rows, its
// checkpoint, or the State table's position, whichever is higher. Missing
// means none. The State table is inserted last in every batch, so every
// table holds every row it gets from the events up to the State table's
// position (DESIGN.md, "Exactly-once effects", 4); a batch whose State
// rows include its last event writes no checkpoints.
func ReadPositions(ctx context.Context, conn driver.Conn, l *Layout) (map[TopicPartition][]int64, error) {
	out := map[TopicPartition][]int64{}
	get := func(k TopicPartition) []int64 {
		v, ok := out[k]
		if !ok {
			v = make([]int64, len(l.Tables))
			for i := range v {
				v[i] = -1
			}
			out[k] = v
		}
		return v
	}
	for i, t := range l.Tables {
		offs, err := MaxOffsets(ctx, conn, t.Name)
		if err != nil {
			return nil, err
		}
		for k, off := range offs {
			v := get(k)
			v[i] = max(v[i], off)
		}
	}
	idx := map[string]int{}
	for i, t := range l.Tables {
		idx[t.Logical] = i
	}
	rows, err := conn.Query(ctx, "SELECT tbl, topic, part, max(off) FROM "+CheckpointsTable+" WHERE proj = ? AND generation = ? GROUP BY tbl, topic, part",
		l.Projection.Name, uint32(l.Generation))
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tbl, topic string
		var part uint32
		var off uint64
		if err := rows.Scan(&tbl, &topic, &part, &off); err != nil {
			return nil, err
		}
		if i, ok := idx[tbl]; ok {
			v := get(TopicPartition{topic, int32(part)})
			v[i] = max(v[i], int64(off))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if s := l.State(); s >= 0 {
		for _, v := range out {
			for i := range v {
				v[i] = max(v[i], v[s])
			}
		}
	}
	return out, nil
}

// ReadParked returns, per topic partition, the aggregates that are parked
// and the offset from which each is parked.
func ReadParked(ctx context.Context, conn driver.Conn, l *Layout) (map[TopicPartition]map[string]int64, error) {
	q := fmt.Sprintf(`SELECT _topic, _partition, aggregate_id, min(_offset) FROM %s
WHERE (_topic, _partition, _offset) NOT IN (SELECT topic, part, off FROM %s WHERE proj = ? AND generation = ?)
GROUP BY _topic, _partition, aggregate_id`, l.Tables[l.Parked].Name, ResolvedTable)
	rows, err := conn.Query(ctx, q, l.Projection.Name, uint32(l.Generation))
	if err != nil {
		return nil, fmt.Errorf("read parked aggregates: %w", err)
	}
	defer rows.Close()
	out := map[TopicPartition]map[string]int64{}
	for rows.Next() {
		var topic, agg string
		var part uint32
		var off uint64
		if err := rows.Scan(&topic, &part, &agg, &off); err != nil {
			return nil, err
		}
		k := TopicPartition{topic, int32(part)}
		if out[k] == nil {
			out[k] = map[string]int64{}
		}
		out[k][agg] = int64(off)
	}
	return out, rows.Err()
}

// TablePositions returns, per topic → partition, the highest offset each
// physical table of the generation holds (index as in Tables; -1: none):
// max(_offset) of its rows or its checkpoint, whichever is higher — the
// positions the runtime resumes from.
func TablePositions(ctx context.Context, conn driver.Conn, l *Layout) (map[string]map[int32][]int64, error) {
	pos, err := ReadPositions(ctx, conn, l)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32][]int64{}
	for k, v := range pos {
		if out[k.Topic] == nil {
			out[k.Topic] = map[int32][]int64{}
		}
		out[k.Topic][k.Partition] = v
	}
	return out, nil
}

// AppliedPositions returns, per topic → partition, the highest offset every
// table of the generation holds (the minimum over its tables; -1: nothing).
// Every event up to it has its full effect in the generation.
func AppliedPositions(ctx context.Context, conn driver.Conn, l *Layout) (map[string]map[int32]int64, error) {
	pos, err := TablePositions(ctx, conn, l)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]int64{}
	for topic, parts := range pos {
		out[topic] = map[int32]int64{}
		for p, v := range parts {
			lo := v[0]
			for _, x := range v[1:] {
				lo = min(lo, x)
			}
			out[topic][p] = lo
		}
	}
	return out, nil
}
