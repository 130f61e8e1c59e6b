package projection_test

import (
	"context"
	"strings"
	"testing"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// A State table is sorted by its key alone: ReplacingMergeTree keeps a
// row per sorting key, so (status, order_id) would keep an order's row
// for every status it went through.
func TestStateTableSortedByItsKey(t *testing.T) {
	p := func(orderBy string) *projection.Projection {
		return &projection.Projection{Name: "orders", Topics: []string{"shop.orders"},
			Apply: func(context.Context, projection.Tx, schemas.Event) error { return nil },
			Tables: []projection.Table{{Name: "orders_current", State: true, Key: "order_id", OrderBy: orderBy,
				Columns: []projection.Column{{Name: "order_id", Type: "String"}, {Name: "status", Type: "String"}}}}}
	}
	for _, ok := range []string{"order_id", "(order_id)", " ( order_id ) "} {
		if err := p(ok).Validate(); err != nil {
			t.Errorf("OrderBy %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"status, order_id", "order_id, status", "(order_id, status)", "status"} {
		err := p(bad).Validate()
		if err == nil || !strings.Contains(err.Error(), `state table "orders_current": OrderBy "`+bad+`": a State table is sorted by its key "order_id" alone`) {
			t.Errorf("OrderBy %q: %v", bad, err)
		}
	}
}
