// Package shop projects the shop domain: orders' current state (with
// history for as-of queries), the order saga's progress, and daily sales
// per product.
//
//	SELECT status, count() FROM orders_current GROUP BY status
//	SELECT * FROM daily_sales WHERE day = today() ORDER BY revenue_cents DESC
package shop

import (
	"context"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// Topic is the shop domain's topic.
const Topic = "shop.orders"

// Order statuses in orders_current.status.
const (
	StatusPlaced        = "placed"
	StatusStockReserved = "stock_reserved"
	StatusPaid          = "paid"
	StatusConfirmed     = "confirmed"
	StatusCancelled     = "cancelled"
)

type order struct {
	OrderID      string
	CustomerID   string
	Currency     string
	Channel      string
	Status       string
	ItemCount    uint32
	LinesAdded   uint32
	TotalCents   int64
	PaidCents    int64
	CancelReason string
	PlacedAt     time.Time
	UpdatedAt    time.Time
}

func (o *order) row() []any {
	return []any{o.OrderID, o.CustomerID, o.Currency, o.Channel, o.Status, o.ItemCount, o.LinesAdded,
		o.TotalCents, o.PaidCents, o.CancelReason, o.PlacedAt, o.UpdatedAt}
}

func orderFrom(v []any) *order {
	return &order{OrderID: v[0].(string), CustomerID: v[1].(string), Currency: v[2].(string), Channel: v[3].(string),
		Status: v[4].(string), ItemCount: v[5].(uint32), LinesAdded: v[6].(uint32), TotalCents: v[7].(int64),
		PaidCents: v[8].(int64), CancelReason: v[9].(string), PlacedAt: v[10].(time.Time), UpdatedAt: v[11].(time.Time)}
}

// Orders is the orders' current-state projection.
func Orders() *projection.Projection {
	return &projection.Projection{
		Name:        "orders",
		Version:     1,
		Description: "current state of every order, with full history for as-of queries",
		Topics:      []string{Topic},
		Tables: []projection.Table{{
			Name: "orders_current",
			Columns: []projection.Column{
				{Name: "order_id", Type: "String"},
				{Name: "customer_id", Type: "String"},
				{Name: "currency", Type: "LowCardinality(String)"},
				{Name: "channel", Type: "LowCardinality(String)"},
				{Name: "status", Type: "LowCardinality(String)"},
				{Name: "item_count", Type: "UInt32"},
				{Name: "lines_added", Type: "UInt32"},
				{Name: "total_cents", Type: "Int64"},
				{Name: "paid_cents", Type: "Int64"},
				{Name: "cancel_reason", Type: "String"},
				{Name: "placed_at", Type: "DateTime64(3, 'UTC')"},
				{Name: "updated_at", Type: "DateTime64(3, 'UTC')"},
			},
			OrderBy: "order_id",
			State:   true,
			Key:     "order_id",
			History: true,
		}},
		Views: []projection.View{{
			Name: "orders_by_status",
			SQL:  "SELECT status, count() AS orders, sum(total_cents) AS total_cents FROM {{orders_current}} FINAL GROUP BY status",
		}},
		Apply: applyOrder,
	}
}

func applyOrder(_ context.Context, tx projection.Tx, ev schemas.Event) error {
	o := &order{OrderID: tx.AggregateID()}
	if row, ok, err := tx.State(); err != nil {
		return err
	} else if ok {
		o = orderFrom(row)
	}
	switch e := ev.Payload.(type) {
	case *events.OrderPlaced:
		o.CustomerID, o.Currency, o.Channel = e.CustomerID, e.Currency, e.Channel
		o.ItemCount, o.PlacedAt, o.Status = uint32(e.ItemCount), e.PlacedAt.UTC(), StatusPlaced
	case *events.OrderItemAdded:
		o.LinesAdded++
		o.TotalCents += int64(e.Quantity) * e.UnitPriceCents
	case *events.StockReserved:
		o.Status = StatusStockReserved
	case *events.PaymentConfirmed:
		o.PaidCents += e.AmountCents
		o.Status = StatusPaid
	case *events.OrderConfirmed:
		o.Status = StatusConfirmed
	case *events.OrderCancelled:
		o.Status, o.CancelReason = StatusCancelled, e.Reason
	default:
		return nil // failures and compensation show in the saga projection
	}
	o.UpdatedAt = ev.OccurredAt.UTC()
	return tx.Emit("orders_current", o.row()...)
}
