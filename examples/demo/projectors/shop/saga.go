package shop

import (
	"context"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// Saga outcomes in order_saga.outcome.
const (
	OutcomePending     = "pending"
	OutcomeConfirmed   = "confirmed"
	OutcomeCompensated = "compensated" // payment failed, stock released, order cancelled
	OutcomeRejected    = "rejected"    // stock could not be reserved
)

type saga struct {
	OrderID       string
	Stock         string
	Payment       string
	StockReleased bool
	Outcome       string
	Steps         []string
	StartedAt     time.Time
	FinishedAt    time.Time
}

func (s *saga) row() []any {
	return []any{s.OrderID, s.Stock, s.Payment, s.StockReleased, s.Outcome, s.Steps, s.StartedAt, s.FinishedAt}
}

func sagaFrom(v []any) *saga {
	return &saga{OrderID: v[0].(string), Stock: v[1].(string), Payment: v[2].(string), StockReleased: v[3].(bool),
		Outcome: v[4].(string), Steps: v[5].([]string), StartedAt: v[6].(time.Time), FinishedAt: v[7].(time.Time)}
}

// Saga is the order saga's status projection: where each order's
// choreography stands, and whether compensation ran.
func Saga() *projection.Projection {
	return &projection.Projection{
		Name:        "order_saga",
		Version:     1,
		Description: "order saga progress: stock, payment, compensation, outcome",
		Topics:      []string{Topic},
		Tables: []projection.Table{{
			Name: "order_saga",
			Columns: []projection.Column{
				{Name: "order_id", Type: "String"},
				{Name: "stock", Type: "LowCardinality(String)"},
				{Name: "payment", Type: "LowCardinality(String)"},
				{Name: "stock_released", Type: "Bool"},
				{Name: "outcome", Type: "LowCardinality(String)"},
				{Name: "steps", Type: "Array(LowCardinality(String))"},
				{Name: "started_at", Type: "DateTime64(3, 'UTC')"},
				{Name: "finished_at", Type: "DateTime64(3, 'UTC')"},
			},
			OrderBy: "order_id",
			State:   true,
			Key:     "order_id",
		}},
		Views: []projection.View{{
			Name: "saga_outcomes",
			SQL:  "SELECT outcome, count() AS orders, countIf(stock_released) AS stock_released FROM {{order_saga}} FINAL GROUP BY outcome",
		}},
		Apply: applySaga,
	}
}

func applySaga(_ context.Context, tx projection.Tx, ev schemas.Event) error {
	s := &saga{OrderID: tx.AggregateID(), Stock: "pending", Payment: "pending", Outcome: OutcomePending}
	if row, ok, err := tx.State(); err != nil {
		return err
	} else if ok {
		s = sagaFrom(row)
		s.Steps = append([]string(nil), s.Steps...)
	}
	at := ev.OccurredAt.UTC()
	switch ev.Payload.(type) {
	case *events.OrderPlaced:
		s.StartedAt = at
	case *events.OrderItemAdded:
		return nil // not a saga step
	case *events.StockReserved:
		s.Stock = "reserved"
	case *events.StockReservationFailed:
		s.Stock = "failed"
	case *events.PaymentConfirmed:
		s.Payment = "confirmed"
	case *events.PaymentFailed:
		s.Payment = "failed"
	case *events.StockReleased:
		s.StockReleased = true
		s.Stock = "released"
	case *events.OrderConfirmed:
		s.Outcome, s.FinishedAt = OutcomeConfirmed, at
	case *events.OrderCancelled:
		s.Outcome, s.FinishedAt = OutcomeRejected, at
		if s.StockReleased {
			s.Outcome = OutcomeCompensated
		}
	default:
		return nil
	}
	s.Steps = append(s.Steps, shortType(ev.Type))
	return tx.Emit("order_saga", s.row()...)
}

func shortType(t string) string {
	for i := len(t) - 1; i >= 0; i-- {
		if t[i] == '.' {
			return t[i+1:]
		}
	}
	return t
}
