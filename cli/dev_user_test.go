package cli

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/schemas"
)

// A new user's path, without Go of their own: reel dev -catalog
// -projections, their producer writing bare Avro single-object records (no
// headers) to the printed Kafka port, their projection's tables in
// ClickHouse.
func TestDevRunsUserProjections(t *testing.T) {
	server := testenv.ClickHouseServer(t)
	t.Setenv("REEL_CLICKHOUSE_DSN", server)
	catDir, _ := filepath.Abs("../schemas/testdata/acme")
	projDir, _ := filepath.Abs("../projectors/declare/testdata/acme")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- demoProgram().cmdDev(ctx, []string{"-catalog", catDir, "-projections", projDir, "-kafka-port", strconv.Itoa(port),
			"-print-every", "2s", "-duration", "3m"})
	}()

	// The producer: the catalog's current OrderShipped schema, single-object
	// encoded (0xC3 0x01, fingerprint, body), keyed by the order.
	cat, err := schemas.LoadDir(catDir)
	if err != nil {
		t.Fatal(err)
	}
	v := cat.Type("com.acme.orders.OrderShipped").Current()
	cl, err := kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", port)), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 12
	deadline := time.Now().Add(60 * time.Second)
	for i := range n {
		body, err := avro.Marshal(v.Schema, map[string]any{"order_id": fmt.Sprintf("o-%d", i), "carrier": []string{"dhl", "ups", "gls"}[i%3]})
		if err != nil {
			t.Fatal(err)
		}
		val := binary.LittleEndian.AppendUint64([]byte{0xC3, 0x01}, v.Fingerprint)
		rec := &kgo.Record{Topic: "acme.orders", Key: []byte(fmt.Sprintf("o-%d", i)), Value: append(val, body...)}
		for {
			err := cl.ProduceSync(ctx, rec).FirstErr()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("produce to reel dev's Kafka: %v", err)
			}
			select {
			case err := <-done:
				t.Fatalf("reel dev stopped: %v", err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}

	dsn, err := chclient.WithDatabase(server, "reel")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := chclient.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var rows, carriers uint64
	for {
		err := conn.QueryRow(ctx, "SELECT (SELECT count() FROM acme_orders WHERE status = 'SHIPPED'), (SELECT count() FROM acme_shipments_per_carrier)").Scan(&rows, &carriers)
		if err == nil && rows == n && carriers == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acme_orders has %d shipped orders (want %d), %d carriers (want 3): %v", rows, n, carriers, err)
		}
		select {
		case err := <-done:
			t.Fatalf("reel dev stopped: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("reel dev: %v", err)
	}
}
