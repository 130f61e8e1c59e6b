package declare

import (
	"context"
	"fmt"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// ParkError is a park rule that held: Apply returns it, so the worker
// parks the event's aggregate like on any Apply error (DLQ replay applies
// the rule again).
type ParkError struct {
	Projection string
	Event      string // event type
	At         string // file:line of the rule
	Reason     string
}

func (e *ParkError) Error() string {
	return fmt.Sprintf("projection %s parks the aggregate on %s (%s): %s", e.Projection, e.Event, e.At, e.Reason)
}

// EvalError is an expression that failed at run time (a missing map key,
// a value out of a column's range, …). The aggregate parks.
type EvalError struct {
	At   string // file:line of the expression
	Expr string
	Err  error
}

func (e *EvalError) Error() string { return fmt.Sprintf("%s: %s: %v", e.At, e.Expr, e.Err) }
func (e *EvalError) Unwrap() error { return e.Err }

// activation is the inputs of the expressions of one event.
type activation struct {
	event    any
	envelope map[string]any
	state    map[string]any
	exists   bool
	item     any
	index    int64
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		return a.event, true
	case "envelope":
		return a.envelope, true
	case "state":
		return a.state, a.state != nil
	case "exists":
		return a.exists, true
	case "item":
		return a.item, true
	case "index":
		return a.index, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func (p *program) eval(a *activation) (ref.Val, error) {
	v, _, err := p.Eval(a)
	if err != nil {
		return nil, &EvalError{At: p.at, Expr: p.src, Err: err}
	}
	return v, nil
}

func (p *program) bool(a *activation) (bool, error) {
	v, err := p.eval(a)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, &EvalError{At: p.at, Expr: p.src, Err: fmt.Errorf("got %s, want bool", v.Type().TypeName())}
	}
	return bool(b), nil
}

// apply is the Projection's Apply: the event type's rule, evaluated.
func (c *compiled) apply(_ context.Context, tx projection.Tx, ev schemas.Event) error {
	r := c.rules[ev.Type]
	if r == nil {
		r = c.star
	}
	if r == nil || r.ignore {
		return nil
	}
	rec, err := ev.Record()
	if err != nil {
		return err
	}
	// The activation and its maps are reused: nothing an expression
	// returns keeps a reference to them (results are converted to new
	// column values before Apply returns).
	a := c.pool.Get().(*activation)
	defer func() {
		a.event, a.item = nil, nil // keep no payload alive in the pool
		c.pool.Put(a)
	}()
	if c.raw[rec.Schema().FullName()] {
		a.event = rec.Map() // read-only: CEL never writes
	} else {
		a.event = plainValue(rec.Plain())
	}
	pos := tx.Position()
	e := a.envelope
	e["type"], e["version"], e["id"], e["aggregate_id"] = ev.Type, int64(ev.Version), ev.ID, ev.AggregateID
	e["occurred_at"], e["correlation_id"], e["causation_id"] = ev.OccurredAt.UTC(), ev.CorrelationID, ev.CausationID
	e["source"], e["subject"] = ev.Source, ev.Subject
	e["topic"], e["partition"], e["offset"] = pos.Topic, int64(pos.Partition), pos.Offset
	a.exists, a.item, a.index = false, nil, 0
	var row []any
	if c.state != nil {
		old, ok, err := tx.State()
		if err != nil {
			return err
		}
		a.exists = ok
		if ok {
			row = old
		} else {
			row = make([]any, len(c.state.cols))
			for i, col := range c.state.cols {
				row[i] = col.zero
			}
			row[c.keyIdx] = tx.AggregateID()
		}
		for i, n := range c.state.names {
			a.state[n] = c.state.cols[i].in(row[i])
		}
		if !ok && len(c.initial) > 0 {
			for _, s := range c.initial {
				v, err := s.prg.eval(a)
				if err != nil {
					return err
				}
				if row[s.col], err = c.state.cols[s.col].out(v); err != nil {
					return &EvalError{At: s.prg.at, Expr: s.prg.src, Err: err}
				}
			}
			for _, s := range c.initial {
				a.state[c.state.names[s.col]] = c.state.cols[s.col].in(row[s.col])
			}
		}
	}
	if r.when != nil {
		if ok, err := r.when.bool(a); err != nil || !ok {
			return err
		}
	}
	if r.park != nil {
		ok, err := r.park.bool(a)
		if err != nil {
			return err
		}
		if ok {
			reason := "park condition held: " + r.park.src
			if r.reason != nil {
				v, err := r.reason.eval(a)
				if err != nil {
					return err
				}
				reason = fmt.Sprint(v.Value())
			}
			return &ParkError{Projection: c.name, Event: ev.Type, At: r.at, Reason: reason}
		}
	}
	for _, ap := range r.appends {
		if ap.forEach == nil {
			if err := c.emit(tx, a, ap); err != nil {
				return err
			}
			continue
		}
		lv, err := ap.forEach.eval(a)
		if err != nil {
			return err
		}
		l, ok := lv.(traits.Lister)
		if !ok {
			return &EvalError{At: ap.forEach.at, Expr: ap.forEach.src, Err: fmt.Errorf("got %s, want a list", lv.Type().TypeName())}
		}
		n := int64(l.Size().(types.Int))
		for i := range n {
			a.item, a.index = l.Get(types.Int(i)), i
			if err := c.emit(tx, a, ap); err != nil {
				return err
			}
		}
		a.item, a.index = nil, 0
	}
	if r.hasSet {
		out := append([]any(nil), row...)
		for _, s := range r.set {
			v, err := s.prg.eval(a)
			if err != nil {
				return err
			}
			if out[s.col], err = c.state.cols[s.col].out(v); err != nil {
				return &EvalError{At: s.prg.at, Expr: s.prg.src, Err: err}
			}
		}
		return tx.Emit(c.state.name, out...)
	}
	return nil
}

func (c *compiled) emit(tx projection.Tx, a *activation, ap appender) error {
	vals := make([]any, len(ap.values))
	for i, p := range ap.values {
		v, err := p.eval(a)
		if err != nil {
			return err
		}
		if vals[i], err = ap.table.cols[i].out(v); err != nil {
			return &EvalError{At: p.at, Expr: p.src, Err: err}
		}
	}
	return tx.Emit(ap.table.name, vals...)
}
