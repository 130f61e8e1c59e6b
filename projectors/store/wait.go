package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// WaitApplied blocks until generation gen of projection has made every
// given offset durable in ClickHouse — read-your-writes for a producer that
// knows the positions of its events — polling every interval (0: return
// after one check). It works across projector replicas because it reads
// the checkpoints every replica writes.
func WaitApplied(ctx context.Context, conn driver.Conn, projection string, gen int, offsets map[string]map[int32]int64, interval time.Duration) error {
	for {
		missing, err := notApplied(ctx, conn, projection, gen, offsets)
		var ex *clickhouse.Exception
		if errors.As(err, &ex) && ex.Code == codeUnknownTable && interval > 0 {
			// The projector has not created its tables yet.
			missing, err = []string{"(no checkpoints yet)"}, nil
		}
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			return nil
		}
		if interval <= 0 {
			return fmt.Errorf("projection %s g%d has not applied %v yet", projection, gen, missing)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("projection %s g%d has not applied %v: %w", projection, gen, missing, ctx.Err())
		case <-t.C:
		}
	}
}

// codeUnknownTable is ClickHouse's UNKNOWN_TABLE error code.
const codeUnknownTable = 60

func notApplied(ctx context.Context, conn driver.Conn, projection string, gen int, offsets map[string]map[int32]int64) ([]string, error) {
	rows, err := conn.Query(ctx, "SELECT topic, part, min(o) FROM (SELECT tbl, topic, part, max(off) AS o FROM "+CheckpointsTable+
		" WHERE proj = ? AND generation = ? GROUP BY tbl, topic, part) GROUP BY topic, part", projection, uint32(gen))
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of %s: %w", projection, err)
	}
	have, err := scanPositions(rows)
	if err != nil {
		return nil, err
	}
	var missing []string
	for topic, parts := range offsets {
		for p, off := range parts {
			if got, ok := have[TopicPartition{topic, p}]; !ok || got < off {
				missing = append(missing, fmt.Sprintf("%s/%d@%d", topic, p, off))
			}
		}
	}
	return missing, nil
}
