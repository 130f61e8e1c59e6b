package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	testToken = "adm-s3cret-token-7781"
	testCHPW  = "ch-s3cret-pass-5521"
)

// syncBuffer collects the projector's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig(t *testing.T, brokers []string, dsn string, extra map[string]string) *config.Config {
	t.Helper()
	y := `
projector:
  projections: [seats]
  batchEvents: 50
  flushInterval: 50ms
  retryMin: 50ms
  retryMax: 500ms
  generationPoll: 200ms
http:
  listen: "127.0.0.1:0"
log:
  level: debug
`
	envs := map[string]string{
		"REEL_KAFKA_BROKERS":  strings.Join(brokers, ","),
		"REEL_CLICKHOUSE_DSN": dsn,
		"REEL_ADMIN_TOKEN":    testToken,
	}
	for k, v := range extra {
		envs[k] = v
	}
	c, err := config.Parse([]byte(y), func(k string) string { return envs[k] })
	if err != nil {
		t.Fatal(err)
	}
	demoProgram().configure(c)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// startProject runs `reel project` in process and returns its HTTP base URL
// and a function that stops it (SIGTERM equivalent) and returns its error.
func startProject(t *testing.T, cfg *config.Config, logs io.Writer) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- runProject(ctx, cfg, logs, func(a string) { addr <- a }) }()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("reel project stopped before listening: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("reel project did not listen")
	}
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = fmt.Errorf("reel project did not stop within 60s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return base, stop
}

func createTopic(t *testing.T, brokers []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, nil, topic); err != nil {
		t.Logf("create topic %s: %v", topic, err)
	}
}

// produceRecords produces in order and returns the last offset per partition
// and the records as written.
func produceRecords(t *testing.T, brokers []string, recs []*kgo.Record) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res := cl.ProduceSync(context.Background(), recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	last := map[int32]int64{}
	for _, r := range res {
		last[r.Record.Partition] = max(last[r.Record.Partition], r.Record.Offset)
	}
	return last
}

func encodeAll(t *testing.T, evs []schemas.Event) []*kgo.Record {
	t.Helper()
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	codec, err := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	var out []*kgo.Record
	for _, ev := range evs {
		r, err := codec.Encode(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// demoSeatEvents: conferences with seats and reservations; returns the
// events and reserved seats per conference/seat type (an independent fold).
func demoSeatEvents(conferences, reservations int) ([]schemas.Event, map[string]int64) {
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	var evs []schemas.Event
	fold := map[string]int64{}
	for c := 0; c < conferences; c++ {
		id := fmt.Sprintf("conf-%02d", c)
		evs = append(evs, schemas.NewEvent(&events.ConferenceCreated{ConferenceID: id, Name: "Conf " + id, StartsAt: at, EndsAt: at.Add(48 * time.Hour), TimeZone: "UTC"}, schemas.At(at)))
		for _, st := range []string{"general", "vip"} {
			evs = append(evs, schemas.NewEvent(&events.SeatsAdded{ConferenceID: id, SeatType: st, Quantity: 100, PriceCents: 10000, Currency: "EUR"}, schemas.At(at)))
			fold[id+"/"+st] += 0
		}
	}
	for i := 0; i < reservations; i++ {
		id := fmt.Sprintf("conf-%02d", i%conferences)
		st := []string{"general", "vip"}[i%2]
		evs = append(evs, schemas.NewEvent(&events.SeatsReserved{ConferenceID: id, ReservationID: fmt.Sprint("r", i), SeatType: st, Quantity: 1 + i%3, AttendeeEmail: "a@example.com", ReservedAt: at}, schemas.At(at)))
		fold[id+"/"+st] += int64(1 + i%3)
	}
	return evs, fold
}

func waitFor(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func parseMetrics(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// metricValue finds the sample of family name whose labels include want.
func metricValue(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestProjectStatusDLQ runs `reel project` against the test Kafka and
// ClickHouse with a poison record in the stream, then checks the
// projection, /metrics, /readyz, `reel status` and `reel dlq`.
func TestProjectStatusDLQ(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	createTopic(t, brokers, seats.Topic, 3)

	evs, fold := demoSeatEvents(6, 240)
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	poisonID := "conf-poison"
	before := encodeAll(t, []schemas.Event{
		schemas.NewEvent(&events.ConferenceCreated{ConferenceID: poisonID, Name: "Poison", StartsAt: at, EndsAt: at, TimeZone: "UTC"}, schemas.At(at)),
	})
	// Garbage bytes with a valid key and the headers of a real event.
	garbage := encodeAll(t, []schemas.Event{schemas.NewEvent(&events.SeatsAdded{ConferenceID: poisonID, SeatType: "general", Quantity: 5, PriceCents: 1, Currency: "EUR"}, schemas.At(at))})[0]
	garbage.Value = []byte("\xde\xad\xbe\xef not avro at all")
	after := encodeAll(t, []schemas.Event{schemas.NewEvent(&events.SeatsAdded{ConferenceID: poisonID, SeatType: "vip", Quantity: 7, PriceCents: 1, Currency: "EUR"}, schemas.At(at))})
	recs := append(append(append(encodeAll(t, evs), before...), garbage), after...)
	last := produceRecords(t, brokers, recs)

	logs := &syncBuffer{}
	cfg := testConfig(t, brokers, ch.DSN, nil)
	base, stop := startProject(t, cfg, logs)

	if code, _, err := httpGet(base + "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz: %d %v", code, err)
	}
	waitFor(t, "projection applied every produced offset", 90*time.Second, func() error {
		return store.WaitApplied(ctx, ch.Conn, "seats", 1, map[string]map[int32]int64{seats.Topic: last}, 0)
	})
	waitFor(t, "/readyz", 30*time.Second, func() error {
		code, body, err := httpGet(base + "/readyz")
		if err != nil || code != 200 {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})

	// Other aggregates kept flowing: the projection equals the fold.
	rows, err := ch.Conn.Query(ctx, "SELECT conference_id, seat_type, reserved FROM seats_available WHERE conference_id != ?", poisonID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for rows.Next() {
		var c, st string
		var n int64
		if err := rows.Scan(&c, &st, &n); err != nil {
			t.Fatal(err)
		}
		got[c+"/"+st] = n
	}
	rows.Close()
	if fmt.Sprint(got) != fmt.Sprint(fold) {
		t.Fatalf("seats_available differs from the fold:\n got %v\nwant %v", got, fold)
	}

	// /metrics: runtime metrics with the right labels, the lag collector,
	// kprom's client metrics; promlint-clean names.
	var mfs map[string]*dto.MetricFamily
	var metricsBody string
	waitFor(t, "lag metrics", 30*time.Second, func() error {
		code, body, err := httpGet(base + "/metrics")
		if err != nil || code != 200 {
			return fmt.Errorf("/metrics: %d %v", code, err)
		}
		metricsBody = body
		mfs = parseMetrics(t, body)
		for p := range last {
			v, ok := metricValue(mfs, "reel_projector_lag_offsets", map[string]string{"projection": "seats", "generation": "1", "topic": seats.Topic, "partition": fmt.Sprint(p)})
			if !ok || v != 0 {
				return fmt.Errorf("lag of partition %d: %v (present %v)", p, v, ok)
			}
		}
		return nil
	})
	wantEvents := float64(len(evs) + 1) // + the poison aggregate's first event
	if v, _ := metricValue(mfs, "reel_projector_events_total", map[string]string{"projection": "seats", "generation": "1"}); v != wantEvents {
		t.Errorf("reel_projector_events_total{projection=seats,generation=1} = %v, want %v", v, wantEvents)
	}
	for reason, want := range map[string]float64{projectors.ReasonDecode: 1, projectors.ReasonAggregate: 1} {
		if v, _ := metricValue(mfs, "reel_projector_parked_events_total", map[string]string{"projection": "seats", "generation": "1", "reason": reason}); v != want {
			t.Errorf("parked_events_total{reason=%s} = %v, want %v", reason, v, want)
		}
	}
	for p, off := range last {
		if v, _ := metricValue(mfs, "reel_projector_applied_offset", map[string]string{"projection": "seats", "generation": "1", "topic": seats.Topic, "partition": fmt.Sprint(p)}); v != float64(off) {
			t.Errorf("applied_offset partition %d = %v, want %d", p, v, off)
		}
	}
	if v, ok := metricValue(mfs, "reel_projector_parked_aggregates", map[string]string{"projection": "seats", "generation": "1"}); !ok || v != 1 {
		t.Errorf("reel_projector_parked_aggregates = %v (present %v), want 1", v, ok)
	}
	for _, name := range []string{"reel_kafka_connects_total", "go_goroutines", "process_cpu_seconds_total", "reel_projector_insert_duration_seconds", "reel_projector_lag_seconds"} {
		if mfs[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	probs, err := promlint.New(strings.NewReader(metricsBody)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if strings.HasPrefix(p.Metric, "reel_projector") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}

	// reel status.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	st, err := statusOf(ctx, ch.Conn, kadm.NewClient(cl), []*projection.Projection{seats.Availability()})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Projections) != 1 || len(st.Projections[0].Generations) != 1 {
		t.Fatalf("status: %+v", st)
	}
	g := st.Projections[0].Generations[0]
	if g.Generation != 1 || g.Status != store.StatusLive || g.Group != "reel.seats.g1" || g.Lag != 0 || g.ParkedAggregates != 1 || g.ParkedEvents != 2 || g.LastEventTime == nil || g.Error != "" {
		t.Fatalf("status of g1: %+v", g)
	}
	if len(g.Partitions) != 3 {
		t.Fatalf("status partitions: %+v", g.Partitions)
	}
	for _, p := range g.Partitions {
		if p.Applied != last[p.Partition] || p.End != last[p.Partition]+1 || p.Lag != 0 {
			t.Errorf("status partition %d: %+v, produced up to %d", p.Partition, p, last[p.Partition])
		}
	}
	var out bytes.Buffer
	if err := writeStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"seats (v1)", "g1 live", "reel.seats.g1", "lag 0", "parked 1 aggregates / 2 events", seats.Topic} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("reel status:\n%s", out.String())

	// reel dlq list / show.
	aggs, err := store.QueryParkedAggregates(ctx, ch.Conn, "seats", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(aggs) != 1 || aggs[0].Aggregate != poisonID || aggs[0].Events != 2 || fmt.Sprint(aggs[0].Reasons) != "[aggregate decode]" || aggs[0].FirstError == "" {
		t.Fatalf("dlq list: %+v", aggs)
	}
	pevs, err := store.QueryParkedEvents(ctx, ch.Conn, "seats", 1, poisonID)
	if err != nil {
		t.Fatal(err)
	}
	if len(pevs) != 2 || pevs[0].Reason != projectors.ReasonDecode || pevs[1].Reason != projectors.ReasonAggregate ||
		pevs[0].Offset != aggs[0].FirstOffset || !bytes.Equal(pevs[0].Value, garbage.Value) ||
		pevs[0].Headers[schemas.HeaderType] != "conference.SeatsAdded" || pevs[1].Offset <= pevs[0].Offset {
		t.Fatalf("dlq show: %+v", pevs)
	}
	out.Reset()
	_ = writeParkedList(&out, "seats", 1, aggs)
	_ = writeParkedEvents(&out, pevs)
	t.Logf("reel dlq list + show:\n%s", out.String())

	// Admin endpoints refuse a missing or wrong token.
	for _, tok := range []string{"", "wrong-token"} {
		req, _ := http.NewRequest(http.MethodPost, base+"/admin/dlq/discard?projection=seats&aggregate="+poisonID, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %q: status %d, want 401", tok, resp.StatusCode)
		}
	}
	if n, _, _ := store.ParkedCounts(ctx, ch.Conn, "seats", 1); n != 1 {
		t.Fatalf("a refused request changed the parked table: %d aggregates", n)
	}
	// Discard through the running projector; the aggregate flows again.
	out.Reset()
	if err := callAdmin(ctx, &out, base, testToken, "discard", "seats", 0, poisonID); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"resolved":2`) {
		t.Fatalf("discard answer: %s", out.String())
	}
	if a, e, err := store.ParkedCounts(ctx, ch.Conn, "seats", 1); err != nil || a != 0 || e != 0 {
		t.Fatalf("after discard: %d aggregates, %d events parked (%v)", a, e, err)
	}
	if err := callAdmin(ctx, io.Discard, base, testToken, "replay", "seats", 0, poisonID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("replay of a non-parked aggregate: want 404, got %v", err)
	}
	more := produceRecords(t, brokers, encodeAll(t, []schemas.Event{schemas.NewEvent(&events.SeatsAdded{ConferenceID: poisonID, SeatType: "general", Quantity: 11, PriceCents: 1, Currency: "EUR"}, schemas.At(at))}))
	waitFor(t, "the discarded aggregate's next event applied", 60*time.Second, func() error {
		return store.WaitApplied(ctx, ch.Conn, "seats", 1, map[string]map[int32]int64{seats.Topic: more}, 0)
	})
	var total int64
	if err := ch.Conn.QueryRow(ctx, "SELECT seats_total['general'] FROM seat_availability WHERE conference_id = ?", poisonID).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 11 {
		t.Fatalf("after discard, %s general seats = %d, want 11 (only the event after the discard)", poisonID, total)
	}
	if a, _, _ := store.ParkedCounts(ctx, ch.Conn, "seats", 1); a != 0 {
		t.Fatalf("the aggregate was parked again after discard")
	}

	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	_, body, _ := httpGet(base + "/metrics") // server is down: no body expected
	for _, where := range []struct{ name, text string }{{"logs", logs.String()}, {"/metrics", metricsBody + body}} {
		for _, secret := range []string{testToken} {
			if strings.Contains(where.text, secret) {
				t.Errorf("secret leaked into %s", where.name)
			}
		}
	}
	if !strings.Contains(logs.String(), `"msg":"reel project stopped"`) {
		t.Errorf("no graceful stop in the logs:\n%s", tail(logs.String(), 2000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestReadyzFollowsClickHouse puts a TCP proxy between `reel project` and
// ClickHouse and cuts it: /readyz must turn 503, then 200 again.
func TestReadyzFollowsClickHouse(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	createTopic(t, brokers, seats.Topic, 1)
	px := newProxy(t, ch.DSN)
	logs := &syncBuffer{}
	cfg := testConfig(t, brokers, px.dsn, map[string]string{"REEL_CLICKHOUSE_PASSWORD": testCHPW})
	base, _ := startProject(t, cfg, logs)
	ready := func(want int) func() error {
		return func() error {
			code, body, err := httpGet(base + "/readyz")
			if err != nil {
				return err
			}
			if code != want {
				return fmt.Errorf("/readyz %d (want %d): %s", code, want, body)
			}
			return nil
		}
	}
	waitFor(t, "ready", 60*time.Second, ready(200))
	px.down()
	waitFor(t, "not ready while ClickHouse is unreachable", 30*time.Second, ready(503))
	if code, _, _ := httpGet(base + "/healthz"); code != 200 {
		t.Fatalf("/healthz must stay 200 (process alive), got %d", code)
	}
	px.up()
	waitFor(t, "ready again", 60*time.Second, ready(200))
	_, m, _ := httpGet(base + "/metrics")
	for _, s := range []string{testCHPW, testToken} {
		if strings.Contains(logs.String(), s) || strings.Contains(m, s) {
			t.Fatalf("a secret leaked into logs or /metrics")
		}
	}
}

// proxy forwards TCP to the ClickHouse server; down() closes the listener
// and every connection, up() listens again on the same port.
type proxy struct {
	t        *testing.T
	addr     string
	upstream string
	dsn      string
	mu       sync.Mutex
	ln       net.Listener
	conns    []net.Conn
}

func newProxy(t *testing.T, dsn string) *proxy {
	t.Helper()
	u := dsn[strings.Index(dsn, "://")+3:]
	host := u[:strings.IndexAny(u+"/", "/")]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, addr: ln.Addr().String(), upstream: host, dsn: strings.Replace(dsn, host, ln.Addr().String(), 1)}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy up: %v", err)
	}
	p.serve(ln)
}

// TestSupervisorFollowsGenerations flips statuses in _reel_generations the
// way the rebuild job does and checks that `reel project` starts the new
// live generation, keeps the standby one and stops a retired one.
func TestSupervisorFollowsGenerations(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	createTopic(t, brokers, seats.Topic, 2)
	evs, _ := demoSeatEvents(3, 60)
	last := produceRecords(t, brokers, encodeAll(t, evs))
	base, stop := startProject(t, testConfig(t, brokers, ch.DSN, nil), &syncBuffer{})
	waitFor(t, "g1 applied", 60*time.Second, func() error {
		return store.WaitApplied(ctx, ch.Conn, "seats", 1, map[string]map[int32]int64{seats.Topic: last}, 0)
	})
	gens := func(want map[string]string) func() error {
		return func() error {
			_, body, err := httpGet(base + "/metrics")
			if err != nil {
				return err
			}
			have := map[string]string{}
			for _, m := range parseMetrics(t, body)["reel_projector_generation_info"].GetMetric() {
				l := map[string]string{}
				for _, lp := range m.Label {
					l[lp.GetName()] = lp.GetValue()
				}
				have[l["generation"]] = l["status"]
			}
			if fmt.Sprint(have) != fmt.Sprint(want) {
				return fmt.Errorf("generations running %v, want %v", have, want)
			}
			return nil
		}
	}
	p := seats.Availability()
	// Cut-over: g2 live, g1 standby.
	if err := store.SetGeneration(ctx, ch.Conn, p, 2, store.StatusLive, "test cut-over"); err != nil {
		t.Fatal(err)
	}
	if err := store.SetGeneration(ctx, ch.Conn, p, 1, store.StatusStandby, "test cut-over"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "g2 started, g1 kept as standby", 30*time.Second, gens(map[string]string{"1": "standby", "2": "live"}))
	waitFor(t, "g2 applied", 60*time.Second, func() error {
		return store.WaitApplied(ctx, ch.Conn, "seats", 2, map[string]map[int32]int64{seats.Topic: last}, 0)
	})
	// Retire g1: its runner stops and its series disappear.
	if err := store.SetGeneration(ctx, ch.Conn, p, 1, store.StatusRetired, "test retire"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "g1 stopped", 30*time.Second, gens(map[string]string{"2": "live"}))
	_, body, _ := httpGet(base + "/metrics")
	if _, ok := metricValue(parseMetrics(t, body), "reel_projector_events_total", map[string]string{"projection": "seats", "generation": "1"}); ok {
		t.Errorf("the retired generation's runtime metrics are still exported")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
