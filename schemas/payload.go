package schemas

// Payload is implemented by every event struct of the catalog: the struct
// names its event type and the aggregate it belongs to (the Kafka key), so
// producers never have to repeat either.
type Payload interface {
	EventType() string   // full Avro name, e.g. "shop.OrderPlaced"
	AggregateID() string // value of the struct's aggregate ID field
}
