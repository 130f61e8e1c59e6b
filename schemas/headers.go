package schemas

// Record header names of Reel's envelope (what Encode writes). Values
// are UTF-8 strings. Decode also reads CloudEvents headers (envelope.go).
const (
	HeaderType          = "reel.type"           // full Avro name, e.g. "shop.OrderPlaced"
	HeaderVersion       = "reel.version"        // schema version written, decimal, e.g. "2"
	HeaderEventID       = "reel.event_id"       // UUID, idempotency key
	HeaderAggregateID   = "reel.aggregate_id"   // equals the record key
	HeaderOccurredAt    = "reel.occurred_at"    // RFC 3339 with nanoseconds, UTC
	HeaderCorrelationID = "reel.correlation_id" // omitted when empty
	HeaderCausationID   = "reel.causation_id"   // omitted when empty
)
