package declare_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	pseats "github.com/reel-dev/reel/examples/demo/producers/seats"
	pshop "github.com/reel-dev/reel/examples/demo/producers/shop"
	"github.com/reel-dev/reel/examples/demo/projectors/registry"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The declared demo (examples/projections) and the Go projections of the
// same names project the same events: generation 1 runs the Go version,
// generation 2 the declared one, and every table (rows and their Kafka
// positions, State tables after FINAL) and every view must be identical.
// event_log's payload column is the exception: the Go version marshals the
// bound Go struct (Go field names), the declared one the Avro record (Avro
// field names); it is compared as "valid JSON naming the aggregate".
func TestDeclaredDemoEqualsGo(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	cat := demoCatalog(t)
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	createTopics(t, brokers, cat.Topics())
	pos := produceDemo(t, codec, brokers)

	declared, err := declare.LoadDir("../../examples/projections", cat)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range declared {
		t.Run(d.Name, func(t *testing.T) {
			g, err := registry.Get(d.Name)
			if err != nil {
				t.Fatal(err)
			}
			run(t, g, ch.Conn, codec, brokers, pos, 1)
			run(t, d, ch.Conn, codec, brokers, pos, 2, projectors.WithoutViews())
			lg, ld := store.NewLayout(g, 1).Tables, store.NewLayout(d, 2).Tables
			if len(lg) != len(ld) {
				t.Fatalf("Go has %d physical tables, declared %d", len(lg), len(ld))
			}
			for i := range lg {
				if lg[i].Parked {
					continue
				}
				skip := ""
				if d.Name == "event_log" {
					skip = "payload"
				}
				ng, sg := digest(t, ch.Conn, lg[i], skip)
				nd, sd := digest(t, ch.Conn, ld[i], skip)
				if ng != nd || sg != sd || ng == 0 {
					t.Errorf("table %s: Go %d rows (digest %x), declared %d rows (digest %x)", lg[i].Logical, ng, sg, nd, sd)
				} else {
					t.Logf("table %s: %d rows, identical (digest %x)", lg[i].Logical, ng, sg)
				}
			}
			for _, v := range g.Views {
				qg, qd := expand(v.SQL, lg), expand(v.SQL, ld)
				ng, sg := viewDigest(t, ch.Conn, qg)
				nd, sd := viewDigest(t, ch.Conn, qd)
				if ng != nd || sg != sd || ng == 0 {
					t.Errorf("view %s: Go %d rows (digest %x), declared %d rows (digest %x)", v.Name, ng, sg, nd, sd)
				} else {
					t.Logf("view %s: %d rows, identical", v.Name, ng)
				}
			}
			if d.Name == "event_log" {
				var bad, n uint64
				q := fmt.Sprintf(`SELECT countIf(NOT isValidJSON(payload) OR (JSONExtractString(payload, 'order_id') != aggregate_id
					AND JSONExtractString(payload, 'conference_id') != aggregate_id)), count() FROM %s`, ld[0].Name)
				if err := ch.Conn.QueryRow(ctx, q).Scan(&bad, &n); err != nil {
					t.Fatal(err)
				}
				if bad != 0 || n == 0 {
					t.Errorf("event_log payload: %d of %d rows are not JSON naming their aggregate", bad, n)
				}
			}
		})
	}
}

func run(t *testing.T, p *projection.Projection, conn driver.Conn, dec projectors.Decoder, brokers []string, pos map[string]map[int32]int64, gen int, opts ...projectors.Opt) {
	t.Helper()
	opts = append([]projectors.Opt{projectors.Brokers(brokers...), projectors.FlushInterval(20 * time.Millisecond), projectors.Generation(gen)}, opts...)
	r, err := projectors.NewRunner(p, conn, dec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projector %s g%d: %v", p.Name, gen, err)
		}
	}()
	want := map[string]map[int32]int64{}
	for _, topic := range p.Topics {
		want[topic] = pos[topic]
	}
	wctx, wcancel := context.WithTimeout(ctx, 120*time.Second)
	defer wcancel()
	if err := store.WaitApplied(wctx, conn, p.Name, gen, want, 20*time.Millisecond); err != nil {
		t.Fatalf("%s g%d: %v", p.Name, gen, err)
	}
}

func expand(sql string, tables []store.PhysTable) string {
	for _, pt := range tables {
		sql = strings.ReplaceAll(sql, "{{"+pt.Logical+"}}", pt.Name)
	}
	return sql
}

func digest(t *testing.T, conn driver.Conn, pt store.PhysTable, skip string) (rows, sum uint64) {
	t.Helper()
	var cols []string
	for _, c := range pt.Columns {
		switch {
		case c.Name == skip:
		case strings.HasPrefix(c.Type, "Map("):
			cols = append(cols, "mapSort("+c.Name+")")
		default:
			cols = append(cols, c.Name)
		}
	}
	cols = append(cols, "_topic", "_partition", "_offset", "_event_ts")
	final := ""
	if pt.State {
		final = " FINAL"
	}
	q := fmt.Sprintf("SELECT count(), sum(cityHash64(toString(tuple(%s)))) FROM %s%s", strings.Join(cols, ", "), pt.Name, final)
	if err := conn.QueryRow(context.Background(), q).Scan(&rows, &sum); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows, sum
}

func viewDigest(t *testing.T, conn driver.Conn, sql string) (rows, sum uint64) {
	t.Helper()
	q := "SELECT count(), sum(cityHash64(toString(tuple(*)))) FROM (" + sql + ")"
	if err := conn.QueryRow(context.Background(), q).Scan(&rows, &sum); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows, sum
}

func createTopics(t *testing.T, brokers, topics []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := kadm.NewClient(cl).CreateTopics(context.Background(), 6, 1, nil, topics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			t.Fatalf("create topic %s: %v", r.Topic, r.Err)
		}
	}
}

// produceDemo runs both demo services to completion and returns the last
// position per topic and partition.
func produceDemo(t *testing.T, codec *schemas.Codec, brokers []string) map[string]map[int32]int64 {
	t.Helper()
	var mu sync.Mutex
	pos := map[string]map[int32]int64{}
	n := 0
	on := func(_ schemas.Event, p producers.Position) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if pos[p.Topic] == nil {
			pos[p.Topic] = map[int32]int64{}
		}
		if o, ok := pos[p.Topic][p.Partition]; !ok || p.Offset > o {
			pos[p.Topic][p.Partition] = p.Offset
		}
	}
	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if _, err := pseats.Run(context.Background(), pseats.Config{Codec: codec, Kafka: kopts,
		Conferences: 4, SeatsPerType: 60, Rate: -1, Commands: 400, Seed: 5, OnPublish: on}); err != nil {
		t.Fatal(err)
	}
	st, err := pshop.Run(context.Background(), pshop.Config{Codec: codec, Kafka: kopts,
		Orders: 300, Rate: -1, Products: 8, PaymentFailShare: 0.2, StockFailShare: 0.1, Drain: 30 * time.Second, Seed: 11, OnPublish: on})
	if err != nil {
		t.Fatal(err)
	}
	if st.Confirmed == 0 || st.Orders-st.Confirmed == 0 {
		t.Fatalf("the history lacks confirmed or failed orders (%+v): the comparison proves too little", st)
	}
	t.Logf("produced %d events", n)
	return pos
}
