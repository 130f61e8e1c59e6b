// Package eventlog projects every event of every domain into one
// append-only table with its Kafka position: the audit trail and the base
// of as-of queries.
//
//	SELECT event_type, occurred_at FROM event_log WHERE aggregate_id = 'o-1' ORDER BY _offset
package eventlog

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// Log is the event-log projection over the given topics.
func Log(topics ...string) *projection.Projection {
	return &projection.Projection{
		Name:        "event_log",
		Version:     1,
		Description: "every event with its position, for audit and as-of queries",
		Topics:      topics,
		Tables: []projection.Table{{
			Name: "event_log",
			Columns: []projection.Column{
				{Name: "event_id", Type: "String"},
				{Name: "event_type", Type: "LowCardinality(String)"},
				{Name: "schema_version", Type: "UInt16"},
				{Name: "aggregate_id", Type: "String"},
				{Name: "occurred_at", Type: "DateTime64(3, 'UTC')"},
				{Name: "correlation_id", Type: "String"},
				{Name: "causation_id", Type: "String"},
				{Name: "payload", Type: "String"},
			},
			OrderBy: "aggregate_id, _topic, _partition, _offset",
		}},
		Apply: func(_ context.Context, tx projection.Tx, ev schemas.Event) error {
			body, err := json.Marshal(ev.Payload)
			if err != nil {
				return fmt.Errorf("payload as JSON: %w", err)
			}
			return tx.Emit("event_log", ev.ID, ev.Type, uint16(ev.Version), ev.AggregateID, ev.OccurredAt.UTC(),
				ev.CorrelationID, ev.CausationID, string(body))
		},
	}
}
