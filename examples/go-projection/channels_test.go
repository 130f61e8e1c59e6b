package main

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reel-dev/reel/cli"
	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/projectors/projection/projectiontest"
	"github.com/reel-dev/reel/schemas"
)

// Apply alone, without Kafka or ClickHouse: a recording Tx gets the row.
func TestApplyChannels(t *testing.T) {
	tx := projectiontest.New(Channels())
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := schemas.NewEvent(&OrderPlaced{OrderID: "o-1", CustomerID: "c-1", ItemCount: 3, PlacedAt: at, Channel: "web"})
	if err := tx.Apply(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	rows := tx.RowsOf("orders_placed")
	if len(rows) != 1 || rows[0][0] != "o-1" || rows[0][2] != "web" || rows[0][3] != uint32(3) || rows[0][4] != at {
		t.Fatalf("rows %v", rows)
	}
}

// The projection is valid and every name it reads is in the catalog the
// binary runs against (the embedded one); the binding's struct matches it.
func TestChannelsAgainstTheCatalog(t *testing.T) {
	p := Channels()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Events {
		if cat.Type(e) == nil {
			t.Errorf("event type %s is not in the catalog", e)
		}
	}
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(schemas.BindPayload[OrderPlaced]()))
	if err != nil {
		t.Fatal(err)
	}
	in := &OrderPlaced{OrderID: "o-1", CustomerID: "c-1", Currency: "EUR", ItemCount: 2, Channel: "app"}
	rec, err := codec.Encode(context.Background(), schemas.NewEvent(in))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := codec.Decode(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	out, ok := ev.Payload.(*OrderPlaced)
	if !ok || out.OrderID != "o-1" || out.Channel != "app" || out.ItemCount != 2 {
		t.Fatalf("round trip: %T %+v", ev.Payload, ev.Payload)
	}
}

// `channels dev` through the library, end to end: the producer places
// 30 orders on the embedded Kafka, the projection runs on the embedded
// ClickHouse (REEL_CHDB_BIN, or REEL_CLICKHOUSE_DSN), and the final print
// of its view counts every order once.
func TestDevEndToEnd(t *testing.T) {
	if os.Getenv("REEL_CHDB_BIN") == "" && os.Getenv("REEL_CLICKHOUSE_DSN") == "" {
		if os.Getenv("REEL_INTEGRATION") != "" {
			t.Fatal("REEL_INTEGRATION is set but neither REEL_CHDB_BIN nor REEL_CLICKHOUSE_DSN")
		}
		t.Skip("no ClickHouse: set REEL_CHDB_BIN (bash scripts/chdb.sh path) or REEL_CLICKHOUSE_DSN")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	lines := make(chan []string)
	go func() {
		var ls []string
		for s := bufio.NewScanner(r); s.Scan(); {
			ls = append(ls, s.Text())
		}
		lines <- ls
	}()
	err = cli.Run(context.Background(), []string{"dev", "-duration", "12s", "-print-every", "1h",
		"-orders", "30", "-clickhouse-listen", "127.0.0.1:0", "-data-dir", t.TempDir()}, options()...)
	os.Stdout = stdout
	w.Close()
	out := <-lines
	if err != nil {
		t.Fatalf("dev: %v\n%s", err, strings.Join(out, "\n"))
	}
	// After "== final ==": the view's query, its header, one row per channel.
	orders := map[string]int{}
	final, inView := false, false
	for _, l := range out {
		f := strings.Fields(l)
		switch {
		case l == "== final ==":
			final = true
		case final && strings.HasPrefix(l, "channels: view orders_per_channel"):
			inView = true
		case inView && l == "":
			inView = false
		case inView && len(f) == 3 && f[0] != "channel":
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("row %q: %v", l, err)
			}
			orders[f[0]] = n
		}
	}
	if orders["web"] != 10 || orders["app"] != 10 || orders["store"] != 10 {
		t.Fatalf("orders per channel %v, want 10 each; output:\n%s", orders, strings.Join(out, "\n"))
	}
}
