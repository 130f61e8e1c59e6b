package projectors_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// insertRecorder is an HTTP proxy in front of ClickHouse that records the
// settings of every INSERT it forwards.
type insertRecorder struct {
	mu      sync.Mutex
	inserts []url.Values
}

func (rec *insertRecorder) handler(target *url.URL) http.Handler {
	proxy := httputil.NewSingleHostReverseProxy(target)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		text := q.Get("query")
		if text == "" && r.Body != nil {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			text = string(body[:min(len(body), 64)])
		}
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(text)), "INSERT") {
			rec.mu.Lock()
			rec.inserts = append(rec.inserts, q)
			rec.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	})
}

// TestWritesStateSettings runs a projection through a recording proxy:
// every insert (inboxes, checkpoints, claims) must state the settings
// exactly-once rests on, whatever the server's defaults (the embedded
// ClickHouse 26.7 defaults to async_insert=1).
func TestWritesStateSettings(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	target, err := url.Parse(ch.DSN)
	must(t, err)
	target.Path = ""
	rec := &insertRecorder{}
	srv := httptest.NewServer(rec.handler(target))
	defer srv.Close()
	proxied, _ := url.Parse(ch.DSN)
	proxied.Host = strings.TrimPrefix(srv.URL, "http://")
	conn, err := chclient.Open(context.Background(), proxied.String())
	must(t, err)
	defer conn.Close()

	topic := seats.Topic + ".settings"
	createTopic(t, brokers, topic, 2)
	p := seats.Availability()
	for i := range p.Topics {
		p.Topics[i] = topic
	}
	last := produceTo(t, brokers, topic, seatEvents(rand.New(rand.NewSource(3)), 4, 300))
	cat, _ := events.Load()
	codec, _ := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	r, err := projectors.NewRunner(p, conn, codec, projectors.Brokers(brokers...), projectors.KafkaOpts(kgo.ClientID(t.Name())))
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitApplied(t, ch, p.Name, topic, last, done)
	cancel()
	must(t, <-done)

	overridden, err := chclient.CheckServer(context.Background(), ch.Conn)
	must(t, err)
	t.Logf("server defaults Reel overrides: %v", overridden)

	want := map[string]string{"async_insert": "0", "insert_deduplicate": "1",
		"deduplicate_blocks_in_dependent_materialized_views": "1", "materialized_views_ignore_errors": "0"}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.inserts) < 3 {
		t.Fatalf("only %d inserts recorded", len(rec.inserts))
	}
	for i, q := range rec.inserts {
		for n, v := range want {
			if q.Get(n) != v {
				t.Fatalf("insert %d of %d has %s=%q, want %s (query %q)", i, len(rec.inserts), n, q.Get(n), v, q.Get("query"))
			}
		}
	}
	t.Logf("%d inserts, each with %d settings stated", len(rec.inserts), len(want))
}

// TestCheckSettingsRefusesUnsafeTables: a generation table whose
// deduplication window was lowered, or whose guard view is gone, or that
// does not fsync in durable mode, is refused at start with the fix.
func TestCheckSettingsRefusesUnsafeTables(t *testing.T) {
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	p := seats.Availability()
	l := store.NewLayout(p, 1)
	must(t, store.EnsureSchema(ctx, ch.Conn, l))
	must(t, store.CheckSettings(ctx, ch.Conn, l, false, nil))

	err := store.CheckSettings(ctx, ch.Conn, l, true, nil)
	if !errors.Is(err, chclient.ErrUnsafeSettings) || !strings.Contains(err.Error(), "fsync_after_insert = 1") {
		t.Fatalf("durable check on plain tables: %v", err)
	}

	tbl := store.PhysName(p.Name, p.Tables[0].Name, 1)
	must(t, ch.Conn.Exec(ctx, "ALTER TABLE "+tbl+" MODIFY SETTING non_replicated_deduplication_window = 0"))
	must(t, ch.Conn.Exec(ctx, "DROP VIEW "+tbl+"__fence"))
	err = store.CheckSettings(ctx, ch.Conn, l, false, nil)
	var ue *chclient.UnsafeSettingsError
	if !errors.As(err, &ue) || len(ue.Problems) != 2 ||
		!strings.Contains(err.Error(), "ALTER TABLE "+tbl+" MODIFY SETTING non_replicated_deduplication_window = 1000") ||
		!strings.Contains(err.Error(), "guard view "+tbl+"__fence is missing") {
		t.Fatalf("CheckSettings: %v", err)
	}
	t.Logf("refused: %v", err)
}

// TestDurableMode: the Durable option turns fsync on for every table of
// the generation, including tables created before, and costs what it
// costs: the same 20,000 events are projected with and without it (rates
// logged; the machine is shared, so not asserted).
func TestDurableMode(t *testing.T) {
	brokers := testenv.Kafka(t)
	evs := seatEvents(rand.New(rand.NewSource(5)), 50, 20000)
	project := func(durable bool) float64 {
		ch := testenv.ClickHouse(t)
		ctx := context.Background()
		p := seats.Availability()
		topic := fmt.Sprintf("%s.durable%v.%d", seats.Topic, durable, time.Now().UnixNano()%1e9)
		createTopic(t, brokers, topic, 4)
		for i := range p.Topics {
			p.Topics[i] = topic
		}
		// Tables made before durable mode is chosen get it too.
		must(t, store.EnsureSchema(ctx, ch.Conn, store.NewLayout(p, 1)))
		last := produceTo(t, brokers, topic, evs)
		cat, _ := events.Load()
		codec, _ := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
		r, err := projectors.NewRunner(p, ch.Conn, codec, projectors.Brokers(brokers...), projectors.Durable(durable), projectors.KafkaOpts(kgo.ClientID(t.Name())))
		must(t, err)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- r.Run(rctx) }()
		waitApplied(t, ch, p.Name, topic, last, done)
		elapsed := time.Since(start)
		cancel()
		must(t, <-done)
		err = store.CheckSettings(ctx, ch.Conn, r.Layout(), true, nil)
		if durable != (err == nil) {
			t.Fatalf("durable=%v: durable check says %v", durable, err)
		}
		rows, err := ch.Conn.Query(ctx, "SELECT conference_id, seat_type, reserved FROM seats_available")
		must(t, err)
		got := map[string]int64{}
		for rows.Next() {
			var c, st string
			var n int64
			must(t, rows.Scan(&c, &st, &n))
			got[c+"/"+st] = n
		}
		rows.Close()
		compareMaps(t, "seats reserved", foldSeats(evs), got)
		return float64(len(evs)) / elapsed.Seconds()
	}
	plain := project(false)
	durable := project(true)
	t.Logf("%d events: %.0f events/s without durable mode, %.0f/s with fsync_after_insert + fsync_part_directory (%.0f%%)",
		len(evs), plain, durable, 100*durable/plain)
}
