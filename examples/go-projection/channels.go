package main

import (
	"context"
	"time"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// OrderPlaced is this team's Go type for the catalog's shop.OrderPlaced:
// its avro tags name the fields of the current schema version. Bound
// with cli.WithBindings, the projection gets it as the event's Payload;
// its two methods make it publishable too (schemas.Payload).
type OrderPlaced struct {
	OrderID    string    `avro:"order_id"`
	CustomerID string    `avro:"customer_id"`
	Currency   string    `avro:"currency"`
	ItemCount  int       `avro:"item_count"`
	PlacedAt   time.Time `avro:"placed_at"`
	Channel    string    `avro:"channel"`
}

func (OrderPlaced) EventType() string     { return "shop.OrderPlaced" }
func (o OrderPlaced) AggregateID() string { return o.OrderID }

// Channels is the projection: every placed order, and orders and items
// per sales channel.
//
//	SELECT * FROM orders_per_channel
func Channels() *projection.Projection {
	return &projection.Projection{
		Name:        "channels",
		Version:     1,
		Description: "orders placed per sales channel",
		Topics:      []string{"shop.orders"},
		Events:      []string{"shop.OrderPlaced"},
		Tables: []projection.Table{{
			Name: "orders_placed",
			Columns: []projection.Column{
				{Name: "order_id", Type: "String"},
				{Name: "customer_id", Type: "String"},
				{Name: "channel", Type: "LowCardinality(String)"},
				{Name: "items", Type: "UInt32"},
				{Name: "placed_at", Type: "DateTime64(3, 'UTC')"},
			},
			OrderBy: "(channel, order_id)",
		}},
		Views: []projection.View{{
			Name: "orders_per_channel",
			SQL:  "SELECT channel, count() AS orders, sum(items) AS items FROM {{orders_placed}} GROUP BY channel ORDER BY channel",
		}},
		Apply: applyChannels,
	}
}

// applyChannels appends one row per placed order. schemas.As returns the
// bound *OrderPlaced as it is, and decodes into one when the program runs
// without the binding.
func applyChannels(_ context.Context, tx projection.Tx, ev schemas.Event) error {
	o, err := schemas.As[OrderPlaced](ev)
	if err != nil {
		return err
	}
	return tx.Emit("orders_placed", o.OrderID, o.CustomerID, o.Channel, uint32(o.ItemCount), o.PlacedAt.UTC())
}
