package schemas

import "time"

// EventOpt sets envelope fields in NewEvent.
type EventOpt func(*Event)

// At sets OccurredAt (default: now, UTC).
func At(t time.Time) EventOpt { return func(e *Event) { e.OccurredAt = t.UTC() } }

// WithID sets the event ID (default: a fresh UUIDv7, time-ordered).
func WithID(id string) EventOpt { return func(e *Event) { e.ID = id } }

// WithCorrelation sets the correlation ID (default: the event's own ID, so
// the first event of a saga starts its correlation).
func WithCorrelation(id string) EventOpt { return func(e *Event) { e.CorrelationID = id } }

// CausedBy makes the event a reaction to cause: same correlation ID, and the
// cause's ID as causation ID.
func CausedBy(cause Event) EventOpt {
	return func(e *Event) {
		e.CausationID = cause.ID
		e.CorrelationID = cause.CorrelationID
		if e.CorrelationID == "" {
			e.CorrelationID = cause.ID
		}
	}
}

// NewEvent wraps a catalog struct in an envelope: Type and AggregateID from
// the payload, a new ID, OccurredAt now, and the options applied.
//
//	ev := schemas.NewEvent(&events.SeatsReserved{ConferenceID: "c1", …}) // a program's Go type
func NewEvent(p Payload, opts ...EventOpt) Event {
	e := Event{Payload: p, ID: newID(), OccurredAt: time.Now().UTC()}
	if p != nil {
		e.Type, e.AggregateID = p.EventType(), p.AggregateID()
	}
	for _, o := range opts {
		o(&e)
	}
	if e.CorrelationID == "" {
		e.CorrelationID = e.ID
	}
	return e
}
