package projectors

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// flakyDecoder fails its first calls the way the codec does while the
// schema registry is unreachable.
type flakyDecoder struct {
	Decoder
	fails int
}

func (d *flakyDecoder) Decode(ctx context.Context, r *kgo.Record) (schemas.Event, error) {
	if d.fails > 0 {
		d.fails--
		return schemas.Event{}, &schemas.DecodeError{Kind: schemas.ErrRegistryUnavailable, Reason: "registry down (test)",
			Err: errors.New("connection refused")}
	}
	return d.Decoder.Decode(ctx, r)
}

// TestDecodeRetriesWhileRegistryDown: a record that cannot be decoded
// because the registry is unreachable is not the event's fault: it must be
// decoded again once the registry answers, not parked.
func TestDecodeRetriesWhileRegistryDown(t *testing.T) {
	ctx := context.Background()
	r, recs := handRunner(t, "regdown", 5)
	r.dec = &flakyDecoder{Decoder: r.dec, fails: 3}
	w := newWorker(r, testClaim(t, r, tp{Topic: handTopic, Partition: 0}), noPositions(r), nil)
	w.a.process(ctx, recs)
	if err := w.a.flush(ctx); err != nil {
		t.Fatal(err)
	}
	var rows, parked uint64
	if err := r.conn.QueryRow(ctx, "SELECT count() FROM "+store.PhysName(r.proj.Name, "log", 1)).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := r.conn.QueryRow(ctx, "SELECT count() FROM "+store.PhysName(r.proj.Name, "parked", 1)).Scan(&parked); err != nil {
		t.Fatal(err)
	}
	if rows != 5 || parked != 0 {
		t.Errorf("%d rows and %d parked after a registry outage of 3 decodes; want 5 and 0", rows, parked)
	}
}
