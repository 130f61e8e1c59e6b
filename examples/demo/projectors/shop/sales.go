package shop

import (
	"context"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// Sales is the daily-sales projection: an order's lines count as sold on
// the day the order is confirmed. Lines wait in a state table until then;
// cancelled orders never reach sales_lines. Because every base row is
// inserted exactly once, the aggregate view cannot double count on replay.
func Sales() *projection.Projection {
	return &projection.Projection{
		Name:        "sales",
		Version:     1,
		Description: "units and revenue per product per day, from confirmed orders",
		Topics:      []string{Topic},
		Tables: []projection.Table{
			{
				Name: "sales_lines",
				Columns: []projection.Column{
					{Name: "day", Type: "Date"},
					{Name: "product_id", Type: "String"},
					{Name: "order_id", Type: "String"},
					{Name: "quantity", Type: "Int64"},
					{Name: "revenue_cents", Type: "Int64"},
					{Name: "currency", Type: "LowCardinality(String)"},
				},
				OrderBy: "day, product_id, order_id",
			},
			{
				Name: "sales_pending_orders",
				Columns: []projection.Column{
					{Name: "order_id", Type: "String"},
					{Name: "currency", Type: "LowCardinality(String)"},
					{Name: "products", Type: "Array(String)"},
					{Name: "quantities", Type: "Array(Int64)"},
					{Name: "prices_cents", Type: "Array(Int64)"},
					{Name: "closed", Type: "Bool"},
				},
				OrderBy: "order_id",
				State:   true,
				Key:     "order_id",
			},
		},
		Views: []projection.View{{
			Name: "daily_sales",
			SQL: `SELECT day, product_id, currency, sum(quantity) AS units, sum(revenue_cents) AS revenue_cents, uniqExact(order_id) AS orders
FROM {{sales_lines}} GROUP BY day, product_id, currency`,
		}},
		Apply: applySales,
	}
}

func applySales(_ context.Context, tx projection.Tx, ev schemas.Event) error {
	var (
		currency                string
		products                []string
		quantities, pricesCents []int64
		closed                  bool
	)
	row, ok, err := tx.State()
	if err != nil {
		return err
	}
	if ok {
		currency, closed = row[1].(string), row[5].(bool)
		products = append([]string(nil), row[2].([]string)...)
		quantities = append([]int64(nil), row[3].([]int64)...)
		pricesCents = append([]int64(nil), row[4].([]int64)...)
	}
	if closed {
		return nil
	}
	emitState := func() error {
		return tx.Emit("sales_pending_orders", tx.AggregateID(), currency, products, quantities, pricesCents, closed)
	}
	switch e := ev.Payload.(type) {
	case *events.OrderPlaced:
		currency = e.Currency
		return emitState()
	case *events.OrderItemAdded:
		products = append(products, e.ProductID)
		quantities = append(quantities, int64(e.Quantity))
		pricesCents = append(pricesCents, e.UnitPriceCents)
		return emitState()
	case *events.OrderConfirmed:
		day := dayOf(e.ConfirmedAt)
		for i, p := range products {
			if err := tx.Emit("sales_lines", day, p, tx.AggregateID(), quantities[i], quantities[i]*pricesCents[i], currency); err != nil {
				return err
			}
		}
		closed = true
		return emitState()
	case *events.OrderCancelled:
		closed = true
		return emitState()
	}
	return nil
}

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
