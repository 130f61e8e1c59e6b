package schemas

import (
	"errors"
	"fmt"
	"time"
)

// Event is one domain event: the envelope plus the payload.
//
// The envelope comes from Reel's headers when present, else from
// CloudEvents headers, else it is derived from the record (see Decode).
// The payload is decoded into the event type's CURRENT (reader) version,
// whatever version it was written with.
type Event struct {
	Type          string    // catalog type: full Avro name, e.g. "conference.SeatsReserved"
	Version       int       // version the event was WRITTEN with; 0 when not a catalog version
	ID            string    // unique event ID; idempotency key
	AggregateID   string    // record key (or the type's aggregate field)
	OccurredAt    time.Time // when the fact happened (UTC)
	CorrelationID string    // ties a saga's events together
	CausationID   string    // ID of the event or command that caused this one
	Source        string    // CloudEvents source, "" otherwise
	Subject       string    // CloudEvents subject, "" otherwise
	Envelope      Envelope  // where the envelope came from (set by Decode)
	// Payload is a pointer to the Go struct the codec binds to Type (see
	// Bind), else a *Record. Producers may set either, or the struct value.
	Payload any

	body *body // the Avro bytes behind Payload, for Record and As (decoded events only)
}

// Envelope says where a decoded event's envelope came from.
type Envelope string

const (
	EnvelopeReel        Envelope = "reel"        // reel.* headers
	EnvelopeCloudEvents Envelope = "cloudevents" // ce_* headers (Kafka binary mode)
	EnvelopeDerived     Envelope = "derived"     // schema name, key, record time and position
)

// Decode errors. Every decode failure is a *DecodeError whose Kind is
// exactly one of these, so callers classify with errors.Is and park the
// event with a reason a person understands.
var (
	ErrMissingHeader     = errors.New("missing envelope header")
	ErrInvalidHeader     = errors.New("invalid envelope header")
	ErrUnknownEventType  = errors.New("unknown event type")
	ErrUnknownSchema     = errors.New("unknown writer schema")
	ErrMalformed         = errors.New("malformed event payload")
	ErrAggregateMismatch = errors.New("aggregate ID missing or inconsistent")
	ErrUpcast            = errors.New("upcaster failed")
	// ErrRegistryUnavailable: the registry could not be asked (network,
	// 5xx). The only retriable kind: the same record may decode later.
	ErrRegistryUnavailable = errors.New("schema registry unavailable")
)

// Encode errors: an event a producer must not send. Producers validate every
// event of a publish with these before anything reaches Kafka.
var (
	ErrEmptyAggregateID = errors.New("empty aggregate ID")
	ErrSchemaMismatch   = errors.New("payload does not match its schema")
)

// DecodeError is why a record could not become an Event.
type DecodeError struct {
	Kind      error  // one of the Err* decode kinds above
	Reason    string // for a person: what was found and what was expected
	Topic     string
	Partition int32
	Offset    int64
	Err       error // underlying cause (hamba/avro, the registry), may be nil
}

func (e *DecodeError) Error() string {
	at := "record (no topic)"
	if e.Topic != "" {
		at = fmt.Sprintf("%s/%d@%d", e.Topic, e.Partition, e.Offset)
	}
	return fmt.Sprintf("%v: %s at %s", e.Kind, e.Reason, at)
}

// Is matches the Kind, so errors.Is(err, ErrMalformed) classifies.
func (e *DecodeError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// Retriable reports whether decoding the same record again may succeed.
func (e *DecodeError) Retriable() bool { return e.Kind == ErrRegistryUnavailable }
