// Package events is the demo's event catalog and its Go types: the
// catalog as data (catalog/: .avsc files plus catalog.yaml, the layout any
// team's catalog has, embedded), and the Go structs the demo's producers
// and Go projections bind to its types. The engine knows none of it: the
// stock binary (cmd/reel) passes them in, as any program passes its own.
//
//	cat, _ := events.Load()
//	codec, _ := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
package events

import (
	"time"

	"github.com/reel-dev/reel/schemas"
)

// The structs below are the demo's Go types (see Bindings): they
// mirror the CURRENT version of each .avsc file of the demo catalog. Old
// versions decode into them through schema resolution plus upcasters, so a
// projection only ever sees these types. Amounts are integer minor units
// (cents) with an ISO 4217 currency next to them; times are UTC,
// millisecond precision (Avro timestamp-millis).

// ConferenceCreated: conference/ConferenceCreated.v2.avsc.
type ConferenceCreated struct {
	ConferenceID string    `avro:"conference_id"`
	Name         string    `avro:"name"`
	StartsAt     time.Time `avro:"starts_at"`
	EndsAt       time.Time `avro:"ends_at"`
	TimeZone     string    `avro:"time_zone"`
}

// SeatsAdded: conference/SeatsAdded.v2.avsc.
type SeatsAdded struct {
	ConferenceID string `avro:"conference_id"`
	SeatType     string `avro:"seat_type"`
	Quantity     int64  `avro:"quantity"`
	PriceCents   int64  `avro:"price_cents"`
	Currency     string `avro:"currency"`
}

// SeatsReserved: conference/SeatsReserved.v3.avsc.
type SeatsReserved struct {
	ConferenceID  string    `avro:"conference_id"`
	ReservationID string    `avro:"reservation_id"`
	SeatType      string    `avro:"seat_type"`
	Quantity      int       `avro:"quantity"`
	AttendeeEmail string    `avro:"attendee_email"`
	ReservedAt    time.Time `avro:"reserved_at"`
}

// SeatReservationCancelled: conference/SeatReservationCancelled.v1.avsc.
type SeatReservationCancelled struct {
	ConferenceID  string    `avro:"conference_id"`
	ReservationID string    `avro:"reservation_id"`
	SeatType      string    `avro:"seat_type"`
	Quantity      int       `avro:"quantity"`
	Reason        string    `avro:"reason"`
	CancelledAt   time.Time `avro:"cancelled_at"`
}

// OrderPlaced: shop/OrderPlaced.v2.avsc. ItemCount OrderItemAdded events
// of the same order follow it.
type OrderPlaced struct {
	OrderID    string    `avro:"order_id"`
	CustomerID string    `avro:"customer_id"`
	Currency   string    `avro:"currency"`
	ItemCount  int       `avro:"item_count"`
	PlacedAt   time.Time `avro:"placed_at"`
	Channel    string    `avro:"channel"`
}

// OrderItemAdded: shop/OrderItemAdded.v1.avsc. Sales per product are
// Quantity × UnitPriceCents of these lines.
type OrderItemAdded struct {
	OrderID        string    `avro:"order_id"`
	LineNo         int       `avro:"line_no"`
	ProductID      string    `avro:"product_id"`
	Quantity       int       `avro:"quantity"`
	UnitPriceCents int64     `avro:"unit_price_cents"`
	AddedAt        time.Time `avro:"added_at"`
}

// StockLine is one product and quantity held or released for an order.
type StockLine struct {
	ProductID string `avro:"product_id"`
	Quantity  int    `avro:"quantity"`
}

// StockReserved: shop/StockReserved.v1.avsc.
type StockReserved struct {
	OrderID       string      `avro:"order_id"`
	ReservationID string      `avro:"reservation_id"`
	Lines         []StockLine `avro:"lines"`
	ReservedAt    time.Time   `avro:"reserved_at"`
}

// StockReservationFailed: shop/StockReservationFailed.v1.avsc.
type StockReservationFailed struct {
	OrderID   string    `avro:"order_id"`
	ProductID string    `avro:"product_id"`
	Requested int       `avro:"requested"`
	Available int       `avro:"available"`
	Reason    string    `avro:"reason"`
	FailedAt  time.Time `avro:"failed_at"`
}

// PaymentConfirmed: shop/PaymentConfirmed.v2.avsc.
type PaymentConfirmed struct {
	OrderID           string    `avro:"order_id"`
	PaymentID         string    `avro:"payment_id"`
	AmountCents       int64     `avro:"amount_cents"`
	Currency          string    `avro:"currency"`
	ProviderReference *string   `avro:"provider_reference"`
	ConfirmedAt       time.Time `avro:"confirmed_at"`
	Method            string    `avro:"method"`
}

// PaymentFailed: shop/PaymentFailed.v1.avsc.
type PaymentFailed struct {
	OrderID     string    `avro:"order_id"`
	PaymentID   string    `avro:"payment_id"`
	AmountCents int64     `avro:"amount_cents"`
	Currency    string    `avro:"currency"`
	Reason      string    `avro:"reason"`
	FailedAt    time.Time `avro:"failed_at"`
}

// StockReleased: shop/StockReleased.v1.avsc (compensation).
type StockReleased struct {
	OrderID       string      `avro:"order_id"`
	ReservationID string      `avro:"reservation_id"`
	Lines         []StockLine `avro:"lines"`
	Reason        string      `avro:"reason"`
	ReleasedAt    time.Time   `avro:"released_at"`
}

// OrderConfirmed: shop/OrderConfirmed.v1.avsc (terminal).
type OrderConfirmed struct {
	OrderID     string    `avro:"order_id"`
	TotalCents  int64     `avro:"total_cents"`
	Currency    string    `avro:"currency"`
	ConfirmedAt time.Time `avro:"confirmed_at"`
}

// OrderCancelled: shop/OrderCancelled.v1.avsc (terminal).
type OrderCancelled struct {
	OrderID     string    `avro:"order_id"`
	Reason      string    `avro:"reason"`
	CancelledAt time.Time `avro:"cancelled_at"`
}

func (*ConferenceCreated) EventType() string        { return "conference.ConferenceCreated" }
func (*SeatsAdded) EventType() string               { return "conference.SeatsAdded" }
func (*SeatsReserved) EventType() string            { return "conference.SeatsReserved" }
func (*SeatReservationCancelled) EventType() string { return "conference.SeatReservationCancelled" }
func (*OrderPlaced) EventType() string              { return "shop.OrderPlaced" }
func (*OrderItemAdded) EventType() string           { return "shop.OrderItemAdded" }
func (*StockReserved) EventType() string            { return "shop.StockReserved" }
func (*StockReservationFailed) EventType() string   { return "shop.StockReservationFailed" }
func (*PaymentConfirmed) EventType() string         { return "shop.PaymentConfirmed" }
func (*PaymentFailed) EventType() string            { return "shop.PaymentFailed" }
func (*StockReleased) EventType() string            { return "shop.StockReleased" }
func (*OrderConfirmed) EventType() string           { return "shop.OrderConfirmed" }
func (*OrderCancelled) EventType() string           { return "shop.OrderCancelled" }

func (e *ConferenceCreated) AggregateID() string        { return e.ConferenceID }
func (e *SeatsAdded) AggregateID() string               { return e.ConferenceID }
func (e *SeatsReserved) AggregateID() string            { return e.ConferenceID }
func (e *SeatReservationCancelled) AggregateID() string { return e.ConferenceID }
func (e *OrderPlaced) AggregateID() string              { return e.OrderID }
func (e *OrderItemAdded) AggregateID() string           { return e.OrderID }
func (e *StockReserved) AggregateID() string            { return e.OrderID }
func (e *StockReservationFailed) AggregateID() string   { return e.OrderID }
func (e *PaymentConfirmed) AggregateID() string         { return e.OrderID }
func (e *PaymentFailed) AggregateID() string            { return e.OrderID }
func (e *StockReleased) AggregateID() string            { return e.OrderID }
func (e *OrderConfirmed) AggregateID() string           { return e.OrderID }
func (e *OrderCancelled) AggregateID() string           { return e.OrderID }

// Bindings binds the demo catalog's types to the structs above (and
// SeatsReserved's upcaster), for the demo's Go producers and projections.
// The catalog itself knows nothing of these: it is the .avsc files.
func Bindings() []schemas.Binding {
	return []schemas.Binding{
		schemas.BindPayload[ConferenceCreated](),
		schemas.BindPayload[SeatsAdded](),
		schemas.BindPayload[SeatsReserved]().WithUpcast(upcastSeatsReserved),
		schemas.BindPayload[SeatReservationCancelled](),
		schemas.BindPayload[OrderPlaced](),
		schemas.BindPayload[OrderItemAdded](),
		schemas.BindPayload[StockReserved](),
		schemas.BindPayload[StockReservationFailed](),
		schemas.BindPayload[PaymentConfirmed](),
		schemas.BindPayload[PaymentFailed](),
		schemas.BindPayload[StockReleased](),
		schemas.BindPayload[OrderConfirmed](),
		schemas.BindPayload[OrderCancelled](),
	}
}
