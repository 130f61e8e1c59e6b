// Package projectiontest runs a projection's Apply without Kafka or
// ClickHouse, for unit tests of its logic: a Tx records what Apply emits,
// keeps each aggregate's State row as the runtime would, and collects side
// effects instead of running them.
//
//	tx := projectiontest.New(orders.Projection())
//	if err := tx.Apply(ctx, schemas.Event{Type: "shop.OrderPlaced", AggregateID: "o-1", Payload: &placed}); err != nil {
//		t.Fatal(err)
//	}
//	row, ok := tx.StateOf("o-1") // the orders_current row
//	rows := tx.RowsOf("orders_history")
//
// It checks what the runtime checks when Apply emits (the table exists,
// one value per column, a State row's key is the event's aggregate), not
// what ClickHouse checks when it inserts (value types): the end-to-end
// suite (projectors/conformance) does that.
package projectiontest

import (
	"context"
	"fmt"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// Row is one emitted row.
type Row struct {
	Table  string
	Values []any
	Event  projection.Position // the position of the event that emitted it
}

// Tx is a projection.Tx that records. Its exported fields are the event
// being applied; set them to test an Apply directly, or let Apply set them.
type Tx struct {
	// Projection declares the tables Emit checks against (nil: no checks,
	// State always misses).
	Projection *projection.Projection
	Pos        projection.Position
	Aggregate  string
	Replay     bool

	// Rows are the rows emitted by every successful Apply, in order.
	Rows []Row
	// Effects are the side effects registered (none while Replay).
	Effects []func(context.Context) error

	states map[string][]any // aggregate → State row
	cur    []any            // this event's State row (after its Emits)
	next   int64            // offset of the next event Apply runs
}

var _ projection.Tx = (*Tx)(nil)

// New returns a recording Tx for p's tables.
func New(p *projection.Projection) *Tx {
	return &Tx{Projection: p, states: map[string][]any{}}
}

// Apply runs the projection's Apply for ev as the runtime would: the
// aggregate is ev.AggregateID, the offset counts the events (0, 1, …),
// events the projection does not want are skipped, and nothing the event
// emitted or registered is kept when Apply fails.
func (tx *Tx) Apply(ctx context.Context, ev schemas.Event) error {
	if tx.Projection == nil || tx.Projection.Apply == nil {
		return fmt.Errorf("projectiontest: no projection with an Apply")
	}
	if tx.states == nil {
		tx.states = map[string][]any{}
	}
	tx.Pos.Offset, tx.next = tx.next, tx.next+1
	tx.Aggregate, tx.cur = ev.AggregateID, nil
	rows, effects := len(tx.Rows), len(tx.Effects)
	if !tx.Projection.Wants(ev.Type) {
		return nil
	}
	if err := tx.Projection.Apply(ctx, tx, ev); err != nil {
		tx.Rows, tx.Effects, tx.cur = tx.Rows[:rows], tx.Effects[:effects], nil
		return err
	}
	if tx.cur != nil {
		tx.states[tx.Aggregate] = tx.cur
	}
	return nil
}

// SetState gives an aggregate a State row before Apply, as if earlier
// events had written it.
func (tx *Tx) SetState(aggregate string, values ...any) {
	if tx.states == nil {
		tx.states = map[string][]any{}
	}
	tx.states[aggregate] = append([]any(nil), values...)
}

// StateOf returns an aggregate's State row after the events applied so far.
func (tx *Tx) StateOf(aggregate string) ([]any, bool) {
	row, ok := tx.states[aggregate]
	return append([]any(nil), row...), ok
}

// RowsOf returns the values of the rows emitted into table, in order.
func (tx *Tx) RowsOf(table string) [][]any {
	var out [][]any
	for _, r := range tx.Rows {
		if r.Table == table {
			out = append(out, r.Values)
		}
	}
	return out
}

// Emit records a row, checked against the projection's declaration.
func (tx *Tx) Emit(table string, values ...any) error {
	if p := tx.Projection; p != nil {
		_, t := p.Table(table)
		if t == nil {
			return fmt.Errorf("emit: projection %q has no table %q", p.Name, table)
		}
		if len(values) != len(t.Columns) {
			return fmt.Errorf("emit %s: %d values for %d columns", table, len(values), len(t.Columns))
		}
		if t.State {
			for i, c := range t.Columns {
				if k, _ := values[i].(string); c.Name == t.Key && k != tx.Aggregate {
					return fmt.Errorf("emit %s: key column %q is %v, but the event's aggregate is %q", table, t.Key, values[i], tx.Aggregate)
				}
			}
			tx.cur = append([]any(nil), values...)
		}
	}
	tx.Rows = append(tx.Rows, Row{Table: table, Values: append([]any(nil), values...), Event: tx.Pos})
	return nil
}

// State returns the aggregate's State row: this event's last Emit into the
// State table, else the row earlier events (or SetState) left.
func (tx *Tx) State() ([]any, bool, error) {
	if p := tx.Projection; p != nil {
		state := false
		for _, t := range p.Tables {
			state = state || t.State
		}
		if !state {
			return nil, false, fmt.Errorf("projection %q has no State table", p.Name)
		}
	}
	if tx.cur != nil {
		return append([]any(nil), tx.cur...), true, nil
	}
	row, ok := tx.states[tx.Aggregate]
	if !ok {
		return nil, false, nil
	}
	return append([]any(nil), row...), true, nil
}

// SideEffect records fn unless the Tx is replaying (the runtime never runs
// effects of a replay).
func (tx *Tx) SideEffect(fn func(ctx context.Context) error) {
	if !tx.Replay {
		tx.Effects = append(tx.Effects, fn)
	}
}

// Position is Pos.
func (tx *Tx) Position() projection.Position { return tx.Pos }

// AggregateID is Aggregate.
func (tx *Tx) AggregateID() string { return tx.Aggregate }

// Replaying is Replay.
func (tx *Tx) Replaying() bool { return tx.Replay }
