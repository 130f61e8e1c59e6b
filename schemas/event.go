package schemas

import (
	"errors"
	"time"
)

// Event is one domain event: the envelope (carried in Kafka record headers)
// plus the payload decoded into the Go type of the event's CURRENT (reader)
// version, whatever version it was written with.
type Event struct {
	Type          string    // full Avro name, e.g. "conference.SeatsReserved"
	Version       int       // version the event was WRITTEN with (schema version)
	ID            string    // unique event ID (UUID); idempotency key
	AggregateID   string    // Kafka record key
	OccurredAt    time.Time // when the fact happened (UTC)
	CorrelationID string    // ties a saga's events together
	CausationID   string    // ID of the event or command that caused this one
	Payload       any       // pointer to the current version's Go struct, e.g. *SeatsReserved
}

// Decode errors. Every decode failure wraps exactly one of these so the
// projector can classify it (errors.Is) and park the event with a reason.
var (
	ErrMissingHeader    = errors.New("missing or invalid envelope header")
	ErrUnknownEventType = errors.New("unknown event type")
	ErrUnknownSchema    = errors.New("unknown writer schema")
	ErrMalformed        = errors.New("malformed event payload")
	ErrUpcast           = errors.New("upcaster failed")
)

// Encode errors: an event a producer must not send. Producers validate every
// event of a publish with these before anything reaches Kafka.
var (
	ErrEmptyAggregateID = errors.New("empty aggregate ID")
	ErrSchemaMismatch   = errors.New("payload does not match its schema")
)
