package schemas

// Record header names of the envelope. Values are UTF-8 strings.
const (
	HeaderType          = "reel.type"           // full Avro name, e.g. "shop.OrderPlaced"
	HeaderVersion       = "reel.version"        // schema version written, decimal, e.g. "2"
	HeaderEventID       = "reel.event_id"       // UUID, idempotency key
	HeaderAggregateID   = "reel.aggregate_id"   // equals the record key
	HeaderOccurredAt    = "reel.occurred_at"    // RFC 3339 with nanoseconds, UTC
	HeaderCorrelationID = "reel.correlation_id" // omitted when empty
	HeaderCausationID   = "reel.causation_id"   // omitted when empty
)

// Wire framing of record values.
const (
	// single-object encoding: 0xC3 0x01, then the writer schema's
	// CRC-64-AVRO fingerprint (8 bytes, little endian), then Avro binary.
	soeMagic0, soeMagic1 = 0xC3, 0x01
	soeHeaderLen         = 10
	// Confluent framing: magic 0, 4-byte big-endian schema ID, Avro binary.
	confluentMagic     = 0x00
	confluentHeaderLen = 5
)
