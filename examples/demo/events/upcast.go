package events

import (
	"fmt"
	"time"

	"github.com/reel-dev/reel/schemas"
)

// Upcasters repair what schema resolution cannot: a field whose meaning
// needs the envelope or other fields. They run after resolution, only for
// events written with an older version, and must be pure functions of the
// event so a replay gives the same result.

// upcastSeatsReserved: v1 and v2 had no business time; the envelope's
// occurred-at was it, so v3 readers get that instead of the epoch default.
func upcastSeatsReserved(writerVersion int, ev *schemas.Event) error {
	p, ok := ev.Payload.(*SeatsReserved)
	if !ok {
		return fmt.Errorf("payload is %T, want *SeatsReserved", ev.Payload)
	}
	if writerVersion < 3 {
		if ev.OccurredAt.IsZero() {
			return fmt.Errorf("v%d SeatsReserved needs occurred-at to set reserved_at", writerVersion)
		}
		p.ReservedAt = ev.OccurredAt.UTC().Truncate(time.Millisecond)
	}
	return nil
}
