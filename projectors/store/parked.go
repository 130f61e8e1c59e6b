package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/internal/chclient"
)

// This file holds the read-side SQL of parked events that the operator
// tools (`reel dlq`, `reel status`, the lag collector) share. It
// only reads, except MarkParkedResolved, which an offline discard uses when
// no projector is running (a running one must be asked through its admin
// endpoint, because its workers keep parked aggregates in memory).

// ParkedAggregate summarises the unresolved parked events of one aggregate.
type ParkedAggregate struct {
	Aggregate   string    `json:"aggregate"`
	Topic       string    `json:"topic"`
	Partition   int32     `json:"partition"`
	Events      int       `json:"events"`
	FirstOffset int64     `json:"first_offset"`
	LastOffset  int64     `json:"last_offset"`
	Reasons     []string  `json:"reasons"`
	FirstError  string    `json:"first_error"`
	ParkedAt    time.Time `json:"parked_at"`
}

// ParkedEvent is one unresolved parked event.
type ParkedEvent struct {
	Aggregate string            `json:"aggregate"`
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	EventType string            `json:"event_type"`
	EventID   string            `json:"event_id"`
	Reason    string            `json:"reason"`
	Error     string            `json:"error"`
	Key       string            `json:"key"`
	Value     []byte            `json:"value"`
	Headers   map[string]string `json:"headers"`
	EventTime time.Time         `json:"event_time"`
	ParkedAt  time.Time         `json:"parked_at"`
}

// unresolved is the WHERE clause selecting a parked table's unresolved rows;
// its two parameters are the projection and the generation.
const unresolved = `(_topic, _partition, _offset) NOT IN (SELECT topic, part, off FROM ` + ResolvedTable + ` WHERE proj = ? AND generation = ?)`

// parkedTable returns the generation's parked table, or "" when the
// generation never ran (no table yet: nothing parked).
func parkedTable(ctx context.Context, conn driver.Conn, projection string, gen int) (string, error) {
	name := PhysName(projection, "parked", gen)
	var n uint8
	if err := conn.QueryRow(ctx, "EXISTS TABLE "+name).Scan(&n); err != nil {
		return "", fmt.Errorf("look up %s: %w", name, err)
	}
	if n == 0 {
		return "", nil
	}
	var m uint8
	if err := conn.QueryRow(ctx, "EXISTS TABLE "+ResolvedTable).Scan(&m); err != nil {
		return "", fmt.Errorf("look up %s: %w", ResolvedTable, err)
	}
	if m == 0 {
		return "", nil
	}
	return name, nil
}

// QueryParkedAggregates lists the aggregates of a generation that have
// unresolved parked events, oldest parking first.
func QueryParkedAggregates(ctx context.Context, conn driver.Conn, projection string, gen int) ([]ParkedAggregate, error) {
	t, err := parkedTable(ctx, conn, projection, gen)
	if err != nil || t == "" {
		return nil, err
	}
	q := fmt.Sprintf(`SELECT aggregate_id, _topic, _partition, count(), min(_offset), max(_offset),
  groupUniqArray(toString(reason)), argMin(error, _offset), min(parked_at)
FROM %s WHERE %s
GROUP BY aggregate_id, _topic, _partition
ORDER BY min(parked_at), aggregate_id`, t, unresolved)
	rows, err := conn.Query(ctx, q, projection, uint32(gen))
	if err != nil {
		return nil, fmt.Errorf("list parked aggregates of %s g%d: %w", projection, gen, err)
	}
	defer rows.Close()
	var out []ParkedAggregate
	for rows.Next() {
		var a ParkedAggregate
		var part uint32
		var n, lo, hi uint64
		if err := rows.Scan(&a.Aggregate, &a.Topic, &part, &n, &lo, &hi, &a.Reasons, &a.FirstError, &a.ParkedAt); err != nil {
			return nil, err
		}
		sort.Strings(a.Reasons)
		a.Partition, a.Events, a.FirstOffset, a.LastOffset = int32(part), int(n), int64(lo), int64(hi)
		out = append(out, a)
	}
	return out, rows.Err()
}

// QueryParkedEvents returns an aggregate's unresolved parked events in
// offset order.
func QueryParkedEvents(ctx context.Context, conn driver.Conn, projection string, gen int, aggregate string) ([]ParkedEvent, error) {
	t, err := parkedTable(ctx, conn, projection, gen)
	if err != nil || t == "" {
		return nil, err
	}
	q := fmt.Sprintf(`SELECT aggregate_id, _topic, _partition, _offset, event_type, event_id, reason, error,
  record_key, record_value, headers, _event_ts, parked_at
FROM %s WHERE aggregate_id = ? AND %s
ORDER BY _topic, _partition, _offset`, t, unresolved)
	rows, err := conn.Query(ctx, q, aggregate, projection, uint32(gen))
	if err != nil {
		return nil, fmt.Errorf("read parked events of %q in %s g%d: %w", aggregate, projection, gen, err)
	}
	defer rows.Close()
	var out []ParkedEvent
	for rows.Next() {
		var e ParkedEvent
		var part uint32
		var off uint64
		var value string
		if err := rows.Scan(&e.Aggregate, &e.Topic, &part, &off, &e.EventType, &e.EventID, &e.Reason, &e.Error,
			&e.Key, &value, &e.Headers, &e.EventTime, &e.ParkedAt); err != nil {
			return nil, err
		}
		e.Partition, e.Offset, e.Value = int32(part), int64(off), []byte(value)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ParkedCounts returns how many aggregates and events of a generation are
// parked and unresolved.
func ParkedCounts(ctx context.Context, conn driver.Conn, projection string, gen int) (aggregates, events int, err error) {
	t, err := parkedTable(ctx, conn, projection, gen)
	if err != nil || t == "" {
		return 0, 0, err
	}
	var a, e uint64
	err = conn.QueryRow(ctx, fmt.Sprintf("SELECT uniqExact(aggregate_id), count() FROM %s WHERE %s", t, unresolved), projection, uint32(gen)).Scan(&a, &e)
	if err != nil {
		return 0, 0, fmt.Errorf("count parked events of %s g%d: %w", projection, gen, err)
	}
	return int(a), int(e), nil
}

// MarkParkedResolved records every unresolved parked event of aggregate as
// resolved with the given resolution ("discarded") and returns how many it
// marked. Only for use while no projector runs the generation: a running
// worker would keep the aggregate parked in memory (use its admin endpoint).
func MarkParkedResolved(ctx context.Context, conn driver.Conn, projection string, gen int, aggregate, resolution string) (int, error) {
	evs, err := QueryParkedEvents(ctx, conn, projection, gen, aggregate)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	b, err := conn.PrepareBatch(chclient.WriteContext(ctx, nil), "INSERT INTO "+ResolvedTable+" (proj, generation, topic, part, off, resolution, resolved_at)")
	if err != nil {
		return 0, fmt.Errorf("record resolution: %w", err)
	}
	defer b.Close()
	now := time.Now().UTC()
	for _, e := range evs {
		if err := b.Append(projection, uint32(gen), e.Topic, uint32(e.Partition), uint64(e.Offset), resolution, now); err != nil {
			return 0, err
		}
	}
	if err := b.Send(); err != nil {
		return 0, fmt.Errorf("record resolution: %w", err)
	}
	return len(evs), nil
}
