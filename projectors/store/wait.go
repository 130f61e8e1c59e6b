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
// the generation's positions (AppliedPositions: its tables and the
// checkpoints every replica writes), by its stored definition.
func WaitApplied(ctx context.Context, conn driver.Conn, projection string, gen int, offsets map[string]map[int32]int64, interval time.Duration) error {
	for {
		missing, err := notApplied(ctx, conn, projection, gen, offsets)
		if unknownTable(err) && interval > 0 {
			// The projector has not created its tables yet.
			missing, err = []string{"(no tables yet)"}, nil
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

// unknownTable reports an error of a query on a table that does not exist
// (yet: a generation's definition is recorded before its tables).
func unknownTable(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == codeUnknownTable
}

func notApplied(ctx context.Context, conn driver.Conn, projection string, gen int, offsets map[string]map[int32]int64) ([]string, error) {
	d, rev, err := StoredDefinition(ctx, conn, projection, gen)
	if err != nil {
		return nil, err
	}
	if rev == 0 {
		return []string{"(generation not created yet)"}, nil
	}
	have, err := AppliedPositions(ctx, conn, NewLayout(d.AsProjection(), gen))
	if err != nil {
		return nil, fmt.Errorf("read positions of %s g%d: %w", projection, gen, err)
	}
	var missing []string
	for topic, parts := range offsets {
		for p, off := range parts {
			if got, ok := have[topic][p]; !ok || got < off {
				missing = append(missing, fmt.Sprintf("%s/%d@%d", topic, p, off))
			}
		}
	}
	return missing, nil
}
