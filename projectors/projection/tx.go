package projection

import (
	"context"
	"fmt"
)

// Position is a record's place in Kafka.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

func (p Position) String() string { return fmt.Sprintf("%s/%d@%d", p.Topic, p.Partition, p.Offset) }

// Tx collects the effects of one event. The runtime (package projectors)
// passes one to Apply per event; nothing it collects reaches ClickHouse
// unless Apply returns nil, and the rows then join the partition's batch
// and are inserted with the event's position. Tests of an Apply can pass
// their own (see projection/projectiontest).
type Tx interface {
	// Emit adds a row to a table; values are in the table's column order.
	// For the State table the row becomes the aggregate's new current
	// state.
	Emit(table string, values ...any) error
	// State returns the current row of the event's aggregate in the State
	// table (with this event's earlier Emits applied), or ok=false when
	// the aggregate has no row yet. The slice is a copy; change it and
	// Emit it.
	State() (values []any, ok bool, err error)
	// SideEffect registers fn to run after the event's rows are durable,
	// only when the projection is live (never during a replay or rebuild;
	// with EffectsByGeneration, only inside the generation's effects
	// window, so exactly one generation runs it across a cut-over). It is
	// at-most-once: a crash between the insert and fn loses the call,
	// because the event is not re-applied after its rows are durable.
	// Where delivery must be guaranteed, Emit an outbox row instead and
	// deliver from a consumer of that table.
	SideEffect(fn func(ctx context.Context) error)
	// Position is the Kafka position of the event being applied.
	Position() Position
	// AggregateID is the event's aggregate (the Kafka record key).
	AggregateID() string
	// Replaying reports whether the projection is rebuilding from history
	// rather than following live events.
	Replaying() bool
}
