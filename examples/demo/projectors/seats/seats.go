// Package seats projects the conference domain: seat availability per
// conference and seat type, the read side of the seat-reservation command
// handler.
//
//	SELECT * FROM seats_available WHERE conference_id = 'c-1'
package seats

import (
	"context"
	"fmt"
	"time"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// Topic is the conference domain's topic.
const Topic = "conference.seats"

// availability is one conference's current state.
type availability struct {
	ConferenceID  string
	Name          string
	StartsAt      time.Time
	Total         map[string]int64
	Reserved      map[string]int64
	Reservations  uint32
	Cancellations uint32
	UpdatedAt     time.Time
}

func (a *availability) row() []any {
	return []any{a.ConferenceID, a.Name, a.StartsAt, a.Total, a.Reserved, a.Reservations, a.Cancellations, a.UpdatedAt}
}

func fromRow(v []any) *availability {
	return &availability{
		ConferenceID: v[0].(string), Name: v[1].(string), StartsAt: v[2].(time.Time),
		Total: v[3].(map[string]int64), Reserved: v[4].(map[string]int64),
		Reservations: v[5].(uint32), Cancellations: v[6].(uint32), UpdatedAt: v[7].(time.Time),
	}
}

// Availability is the seat-availability projection.
func Availability() *projection.Projection {
	return &projection.Projection{
		Name:        "seats",
		Version:     1,
		Description: "seats total, reserved and available per conference and seat type",
		Topics:      []string{Topic},
		Tables: []projection.Table{{
			Name: "seat_availability",
			Columns: []projection.Column{
				{Name: "conference_id", Type: "String"},
				{Name: "name", Type: "String"},
				{Name: "starts_at", Type: "DateTime64(3, 'UTC')"},
				{Name: "seats_total", Type: "Map(String, Int64)"},
				{Name: "seats_reserved", Type: "Map(String, Int64)"},
				{Name: "reservations", Type: "UInt32"},
				{Name: "cancellations", Type: "UInt32"},
				{Name: "updated_at", Type: "DateTime64(3, 'UTC')"},
			},
			OrderBy: "conference_id",
			State:   true,
			Key:     "conference_id",
			History: true,
		}},
		Views: []projection.View{
			{Name: "seats_available", SQL: `SELECT conference_id, name, seat_type,
  seats_total[seat_type] AS total, seats_reserved[seat_type] AS reserved,
  seats_total[seat_type] - seats_reserved[seat_type] AS available
FROM {{seat_availability}} FINAL ARRAY JOIN mapKeys(seats_total) AS seat_type`},
			{Name: "seats_reserved_per_conference", SQL: `SELECT conference_id, name,
  arraySum(mapValues(seats_reserved)) AS seats_reserved, reservations, cancellations
FROM {{seat_availability}} FINAL`},
		},
		Apply: apply,
	}
}

func apply(_ context.Context, tx projection.Tx, ev schemas.Event) error {
	a := &availability{ConferenceID: tx.AggregateID(), Total: map[string]int64{}, Reserved: map[string]int64{}}
	if row, ok, err := tx.State(); err != nil {
		return err
	} else if ok {
		a = fromRow(row)
		a.Total, a.Reserved = clone(a.Total), clone(a.Reserved)
	}
	switch e := ev.Payload.(type) {
	case *events.ConferenceCreated:
		a.Name, a.StartsAt = e.Name, e.StartsAt.UTC()
	case *events.SeatsAdded:
		a.Total[e.SeatType] += e.Quantity
	case *events.SeatsReserved:
		if e.Quantity <= 0 {
			return fmt.Errorf("reservation %s: quantity %d", e.ReservationID, e.Quantity)
		}
		a.Reserved[e.SeatType] += int64(e.Quantity)
		a.Reservations++
	case *events.SeatReservationCancelled:
		a.Reserved[e.SeatType] -= int64(e.Quantity)
		a.Cancellations++
	default:
		return nil
	}
	a.UpdatedAt = ev.OccurredAt.UTC()
	return tx.Emit("seat_availability", a.row()...)
}

func clone(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
