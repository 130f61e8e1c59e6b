package projectors_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/schemas"
)

// TestDeclaredForeignCatalog: a team's own catalog (nested and nullable
// records, decimal, date, enum, arrays, maps) and a declared projection,
// no Go anywhere: state with history, an append table and its aggregate,
// and a park rule that parks one aggregate while the others flow.
func TestDeclaredForeignCatalog(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	const topic = "acme.orders"
	createTopic(t, brokers, topic, 2)

	reg := srfake.New()
	defer reg.Close()
	srcl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := schemas.LoadDir("../schemas/testdata/acme")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := declare.LoadDir("declare/testdata/acme", cat)
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	placed := cat.Type("com.acme.orders.OrderPlaced").Current()
	shipped := cat.Type("com.acme.orders.OrderShipped").Current()
	placedID := register(t, srcl, topic+"-com.acme.orders.OrderPlaced", placed.Text)
	shippedID := register(t, srcl, topic+"-com.acme.orders.OrderShipped", shipped.Text)

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	last := map[int32]int64{}
	send := func(key string, value []byte) {
		res := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: value})
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		r := res[0].Record
		last[r.Partition] = max(last[r.Partition], r.Offset)
	}
	const orders = 20
	for i := range orders {
		key := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		o := order(key, i)
		o["items"] = []any{map[string]any{"sku": "a", "qty": 1}, map[string]any{"sku": "b", "qty": i}}
		if i == 5 {
			o["count"] = int64(-1) // the park rule holds
		}
		send(key, framed(t, placedID, placed.Schema, o))
		if i%2 == 0 {
			carrier := []string{"dhl", "ups"}[i%4/2]
			send(key, framed(t, shippedID, shipped.Schema, map[string]any{"order_id": key, "carrier": carrier}))
		}
	}

	codec, err := schemas.NewCodec(cat, schemas.WithRegistry(srcl))
	if err != nil {
		t.Fatal(err)
	}
	r, err := projectors.NewRunner(p, ch.Conn, codec, projectors.Brokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	waitApplied(t, ch, p.Name, topic, last, done)

	var n uint64
	var units int64
	var cities, statuses string
	var amount float64
	if err := ch.Conn.QueryRow(ctx, `SELECT count(), sum(units), arrayStringConcat(arraySort(groupUniqArray(assumeNotNull(city))), ','),
		arrayStringConcat(arraySort(groupUniqArray(status)), ','), sum(amount) FROM acme_orders`).Scan(&n, &units, &cities, &statuses, &amount); err != nil {
		t.Fatal(err)
	}
	// 19 orders (5 parked); units = Σ (1 + i) over i ≠ 5; amount = Σ (100 + 25 i)/100.
	wantUnits, wantAmount := int64(0), 0.0
	for i := range orders {
		if i != 5 {
			wantUnits += int64(1 + i)
			wantAmount += float64(100+25*i) / 100
		}
	}
	if n != orders-1 || units != wantUnits || cities != "Berlin" || statuses != "NEW,SHIPPED" || fmt.Sprintf("%.2f", amount) != fmt.Sprintf("%.2f", wantAmount) {
		t.Fatalf("acme_orders: %d rows, units %d, cities %q, statuses %q, amount %.2f; want %d, %d, Berlin, NEW,SHIPPED, %.2f",
			n, units, cities, statuses, amount, orders-1, wantUnits, wantAmount)
	}
	var skus string
	if err := ch.Conn.QueryRow(ctx, "SELECT arrayStringConcat(skus, ',') FROM acme_orders WHERE order_id = '00000000-0000-0000-0000-000000000004'").Scan(&skus); err != nil {
		t.Fatal(err)
	}
	if skus != "a,b" {
		t.Fatalf("skus %q, want a,b", skus)
	}
	got := map[string]uint64{}
	rows, err := ch.Conn.Query(ctx, "SELECT carrier, shipments FROM acme_shipments_per_carrier")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		var k uint64
		if err := rows.Scan(&c, &k); err != nil {
			t.Fatal(err)
		}
		got[c] = k
	}
	rows.Close()
	if got["dhl"] != 5 || got["ups"] != 5 || len(got) != 2 {
		t.Fatalf("shipments per carrier %v, want dhl 5, ups 5", got)
	}
	var parked uint64
	var reason, why string
	if err := ch.Conn.QueryRow(ctx, "SELECT count(), any(reason), any(error) FROM acme_orders_parked WHERE aggregate_id = '00000000-0000-0000-0000-000000000005'").Scan(&parked, &reason, &why); err != nil {
		t.Fatal(err)
	}
	if parked != 1 || reason != projectors.ReasonApply || !strings.Contains(why, "event.count < 0") {
		t.Fatalf("parked %d (%s): %q; want the order whose count is negative", parked, reason, why)
	}
}
