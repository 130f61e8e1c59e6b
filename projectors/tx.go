package projectors

import (
	"context"
	"fmt"
	"time"

	"github.com/reel-dev/reel/projectors/projection"
)

// eventTx is the runtime's projection.Tx: it collects the effects of one
// event on the applier's (the worker's) goroutine. Nothing it collects reaches ClickHouse
// unless Apply returns nil; the rows then join the partition's batch and
// are inserted with the event's position.
type eventTx struct {
	a      *applier
	pos    projection.Position
	key    string
	ts     time.Time
	replay bool
	// noEffects: side effects are dropped (a replay without effects
	// windows, or an event some table already holds).
	noEffects bool
	rows      []txRow
	rowBuf    [2]txRow // rows' first backing array: most events emit one or two rows, and the Tx is allocated anyway
	state     []any    // pending new state of the aggregate (State table), nil if untouched
	effects   []effect
}

var _ projection.Tx = (*eventTx)(nil)

// effect is one side effect with the offset of the event that asked for it.
type effect struct {
	off int64
	fn  func(context.Context) error
}

type txRow struct {
	table  int // index into Projection.Tables
	values []any
}

// Position is the Kafka position of the event being applied.
func (tx *eventTx) Position() projection.Position { return tx.pos }

// AggregateID is the event's aggregate (the Kafka record key).
func (tx *eventTx) AggregateID() string { return tx.key }

// Replaying reports whether the projection is rebuilding from history
// rather than following live events.
func (tx *eventTx) Replaying() bool { return tx.replay }

// Emit adds a row to a table; values are in the table's column order.
// For the State table the row becomes the aggregate's new current state.
func (tx *eventTx) Emit(table string, values ...any) error {
	i, t := tx.a.proj.Table(table)
	if t == nil {
		return fmt.Errorf("emit: projection %q has no table %q", tx.a.proj.Name, table)
	}
	if len(values) != len(t.Columns) {
		return fmt.Errorf("emit %s: %d values for %d columns", table, len(values), len(t.Columns))
	}
	if t.State {
		if k, _ := values[tx.a.keyCol].(string); k != tx.key {
			return fmt.Errorf("emit %s: key column %q is %v, but the event's aggregate is %q", table, t.Key, values[tx.a.keyCol], tx.key)
		}
		tx.state = values
	}
	tx.rows = append(tx.rows, txRow{table: i, values: values})
	return nil
}

// State returns the current row of the event's aggregate in the State
// table (with this event's earlier Emits applied), or ok=false when the
// aggregate has no row yet. The slice is a copy; change it and Emit it.
func (tx *eventTx) State() (values []any, ok bool, err error) {
	if tx.a.stateIdx < 0 {
		return nil, false, fmt.Errorf("projection %q has no State table", tx.a.proj.Name)
	}
	if tx.state != nil {
		return append([]any(nil), tx.state...), true, nil
	}
	row, ok, err := tx.a.loadState(tx.key)
	if err != nil || !ok {
		return nil, false, err
	}
	return append([]any(nil), row...), true, nil
}

// SideEffect registers fn to run after the event's rows are durable, only
// when the projection is live (never during a replay or rebuild; with
// EffectsByGeneration, only inside the generation's effects window, so
// exactly one generation runs it across a cut-over). It is
// at-most-once: a crash between the insert and fn loses the call, because
// the event is not re-applied after its rows are durable. Where delivery
// must be guaranteed, Emit an outbox row instead and deliver from a
// consumer of that table.
func (tx *eventTx) SideEffect(fn func(ctx context.Context) error) {
	if !tx.noEffects {
		tx.effects = append(tx.effects, effect{off: tx.pos.Offset, fn: fn})
	}
}
