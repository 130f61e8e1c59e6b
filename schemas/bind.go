package schemas

import (
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"
)

// Binding ties a catalog type to Go: a struct its events decode into
// (typed access) and/or an upcaster. Bindings are optional and passed to
// NewCodec explicitly (WithBindings); without one an event's Payload is a
// *Record.
type Binding struct {
	Type string // catalog type (full Avro name)
	// New returns a pointer to a fresh struct of the type's current
	// version (avro struct tags). nil: the payload stays a *Record.
	New func() any
	// Upcast repairs what schema resolution cannot, for events written
	// with an older catalog version. It runs after decoding, gets the
	// writer version and the event (Payload is the bound struct, or a
	// *Record to change with Set), and must be a pure function of the event
	// so a replay gives the same result. nil: none.
	Upcast func(writerVersion int, ev *Event) error
}

// Bind binds eventType to the struct T: its events' Payload is a *T.
func Bind[T any](eventType string) Binding {
	return Binding{Type: eventType, New: func() any { return new(T) }}
}

// BindPayload binds a Payload struct to the type it names itself.
func BindPayload[T any, P interface {
	*T
	Payload
}]() Binding {
	var zero T
	return Bind[T](P(&zero).EventType())
}

// WithUpcast returns b with an upcaster.
func (b Binding) WithUpcast(fn func(writerVersion int, ev *Event) error) Binding {
	b.Upcast = fn
	return b
}

// body is a decoded event's Avro bytes and how to read them, kept so the
// payload can also be seen the other way (Record of a bound event, As of
// a generic one) without decoding twice up front.
type body struct {
	api      avro.API
	resolved avro.Schema        // writer→reader composite
	reader   *avro.RecordSchema // schema of the Record
	data     []byte

	once sync.Once
	rec  *Record
	err  error
}

func (b *body) record() (*Record, error) {
	b.once.Do(func() {
		var m map[string]any
		if err := b.api.Unmarshal(b.resolved, b.data, &m); err != nil {
			b.err = fmt.Errorf("%w: %v", ErrMalformed, err)
			return
		}
		b.rec = NewRecord(b.reader, m)
	})
	return b.rec, b.err
}

// Record returns the payload as a generic record: the Payload itself when
// it is one, else decoded from the event's bytes (once; upcasters of a
// bound struct are not reflected there). Events built in Go rather than
// decoded have no bytes: their Record is an error unless Payload is one.
func (e Event) Record() (*Record, error) {
	if r, ok := e.Payload.(*Record); ok {
		return r, nil
	}
	if e.body == nil {
		return nil, fmt.Errorf("%s event %s: payload is %T and the event was not decoded from Avro", e.Type, e.ID, e.Payload)
	}
	return e.body.record()
}

// As returns the payload as a *T: the Payload itself when it is one (a
// bound type), else decoded from the event's bytes into a new T (its avro
// struct tags against the reader schema). Upcasters run only for bound
// types.
//
//	p, err := schemas.As[OrderPlaced](ev)
func As[T any](ev Event) (*T, error) {
	if p, ok := ev.Payload.(*T); ok {
		return p, nil
	}
	if ev.body == nil {
		return nil, fmt.Errorf("%s event %s: payload is %T, not *%T, and the event was not decoded from Avro", ev.Type, ev.ID, ev.Payload, *new(T))
	}
	p := new(T)
	if err := ev.body.api.Unmarshal(ev.body.resolved, ev.body.data, p); err != nil {
		return nil, fmt.Errorf("%s event %s as %T: %w", ev.Type, ev.ID, p, err)
	}
	return p, nil
}
