// The full cross-language path: Python's stock AvroSerializer → Kafka → Reel's
// projector → ClickHouse, compared with what the events imply. The records
// carry no Reel headers: the envelope comes from the registry's record name,
// the key and the record, or from CloudEvents headers.

package crosslang_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/shop"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// newDecoder is Reel's decoder for records of producers that know nothing of
// Reel: the catalog plus the registry their IDs come from.
func newDecoder(t *testing.T, e *env) projectors.Decoder {
	t.Helper()
	codec, err := schemas.NewCodec(e.cat, schemas.WithRegistry(e.reg), schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	return codec
}

// orderRow is a row of orders_current, and what the events imply for it.
type orderRow struct {
	CustomerID, Currency, Channel, Status string
	ItemCount, LinesAdded                 uint32
	TotalCents                            int64
	PlacedAt, UpdatedAt                   time.Time
}

// fold computes orders_current from what the producers sent: the event
// time is ce_time where the producer sent CloudEvents headers, else the
// record's timestamp (the envelope derived from the record).
func fold(t *testing.T, sents []sent, recs map[pos]*kgo.Record) map[string]orderRow {
	t.Helper()
	num := func(raw json.RawMessage) int64 {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			t.Fatalf("not a number: %s", raw)
		}
		return n
	}
	str := func(raw json.RawMessage) string {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("not a string: %s", raw)
		}
		return s
	}
	// Per order, in the order the events were read (one partition per key).
	sort.Slice(sents, func(i, j int) bool {
		if sents[i].Partition != sents[j].Partition {
			return sents[i].Partition < sents[j].Partition
		}
		return sents[i].Offset < sents[j].Offset
	})
	out := map[string]orderRow{}
	for _, s := range sents {
		o := out[s.Key]
		switch s.Type {
		case "shop.OrderPlaced":
			o.CustomerID, o.Currency, o.Channel = str(s.Value["customer_id"]), str(s.Value["currency"]), str(s.Value["channel"])
			o.ItemCount, o.Status = uint32(num(s.Value["item_count"])), shop.StatusPlaced
			o.PlacedAt = time.UnixMilli(num(s.Value["placed_at"])).UTC()
		case "shop.OrderItemAdded":
			o.LinesAdded++
			o.TotalCents += num(s.Value["quantity"]) * num(s.Value["unit_price_cents"])
		}
		if ce := s.Headers["ce_time"]; ce != "" {
			ts, err := time.Parse(time.RFC3339Nano, ce)
			if err != nil {
				t.Fatal(err)
			}
			o.UpdatedAt = ts.UTC()
		} else {
			o.UpdatedAt = recs[pos{s.Partition, s.Offset}].Timestamp.UTC().Truncate(time.Millisecond)
		}
		out[s.Key] = o
	}
	return out
}

// TestPythonProducersProjectedEndToEnd: two Python services with the stock
// AvroSerializer — one with no headers at all, one with CloudEvents
// binary-mode headers — publish orders into shop.orders through the real
// registry; Reel's orders projection, given only the catalog and the
// registry, projects them, nothing is parked, and orders_current and
// orders_by_status hold exactly what the events imply.
func TestPythonProducersProjectedEndToEnd(t *testing.T) {
	e := setup(t)
	ch := testenv.ClickHouse(t)
	sents := append(e.produce(t, "none", "py-o-", 40), e.produce(t, "cloudevents", "py-ce-", 40)...)
	recs := e.records(t, sents)
	e.checkWire(t, sents, recs)

	last := map[int32]int64{}
	for _, s := range sents {
		if cur, ok := last[s.Partition]; !ok || s.Offset > cur {
			last[s.Partition] = s.Offset
		}
	}
	p := shop.Orders()
	r, err := projectors.NewRunner(p, ch.Conn, newDecoder(t, e), projectors.Brokers(e.brokers...), projectors.KafkaOpts(kgo.ClientID(t.Name())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t0 := time.Now()
	for {
		err := store.WaitApplied(context.Background(), ch.Conn, p.Name, 1, map[string]map[int32]int64{topic: last}, 0)
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("projector stopped early: %v", err)
		default:
		}
		if time.Since(t0) > 90*time.Second {
			t.Fatalf("orders did not apply %v in 90s: %v", last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records projected in %v", len(sents), time.Since(t0).Round(time.Millisecond))

	// Nothing parked: every event was read without Reel's headers.
	var parked uint64
	var reason, perr string
	if err := ch.Conn.QueryRow(context.Background(), "SELECT count(), any(reason), any(error) FROM orders_parked").Scan(&parked, &reason, &perr); err != nil {
		t.Fatal(err)
	}
	if parked > 0 {
		t.Fatalf("%d events parked, e.g. %s: %s", parked, reason, perr)
	}

	want := fold(t, sents, recs)
	rows, err := ch.Conn.Query(context.Background(), `SELECT order_id, customer_id, currency, channel, status,
		item_count, lines_added, total_cents, placed_at, updated_at FROM orders_current`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]orderRow{}
	for rows.Next() {
		var id string
		var o orderRow
		if err := rows.Scan(&id, &o.CustomerID, &o.Currency, &o.Channel, &o.Status, &o.ItemCount, &o.LinesAdded, &o.TotalCents, &o.PlacedAt, &o.UpdatedAt); err != nil {
			t.Fatal(err)
		}
		o.PlacedAt, o.UpdatedAt = o.PlacedAt.UTC(), o.UpdatedAt.UTC()
		got[id] = o
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var diffs []string
	for id, w := range want {
		if g, ok := got[id]; !ok {
			diffs = append(diffs, id+": missing")
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s:\n   got  %+v\n   want %+v", id, g, w))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			diffs = append(diffs, id+": not produced")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("orders_current differs from the fold of %d events in %d of %d orders:\n%v", len(sents), len(diffs), len(want), diffs[:min(len(diffs), 10)])
	}

	var orders uint64
	var total int64
	if err := ch.Conn.QueryRow(context.Background(), "SELECT orders, total_cents FROM orders_by_status WHERE status = 'placed'").Scan(&orders, &total); err != nil {
		t.Fatal(err)
	}
	var wantTotal int64
	for _, o := range want {
		wantTotal += o.TotalCents
	}
	if int(orders) != len(want) || total != wantTotal {
		t.Fatalf("orders_by_status: placed %d orders, %d cents; the events imply %d, %d", orders, total, len(want), wantTotal)
	}
	t.Logf("%d orders (%d without headers, %d with CloudEvents headers) match the fold; %d cents placed", len(want), 40, 40, total)
}
