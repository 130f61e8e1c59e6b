package crosslang_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const topic = "shop.orders"

// sent is one record as produce_shop.py reports it after delivery.
type sent struct {
	Topic     string                     `json:"topic"`
	Partition int32                      `json:"partition"`
	Offset    int64                      `json:"offset"`
	Key       string                     `json:"key"`
	Type      string                     `json:"type"`
	Headers   map[string]string          `json:"headers"`
	Value     map[string]json.RawMessage `json:"value"`
}

type pos struct {
	p int32
	o int64
}

// env is what every cross-language test starts from: the real Kafka and
// registry (or kfake and srfake outside the integration suite), the venv's
// python, and the demo catalog registered through Reel's own registry code
// at the levels the catalog demands.
type env struct {
	brokers []string
	regURL  string
	reg     *sr.Client
	python  string
	cat     *schemas.Catalog
	ids     map[string]int // event type → registry ID of its current version
}

func setup(t *testing.T) *env {
	t.Helper()
	e := bare(t)
	regd, err := schemas.Register(context.Background(), e.reg, e.cat, schemas.RegisterOptions{SetCompatibility: true})
	if err != nil {
		t.Fatalf("reel schemas register: %v", err)
	}
	for _, r := range regd {
		if r.Version == len(e.cat.Versions(r.Type)) {
			e.ids[r.Type] = r.ID
		}
	}
	return e
}

// catalogShop is the catalog's shop directory, the .avsc files the Python
// service uses as its own.
var catalogShop = filepath.Join("..", "..", "examples", "demo", "events", "catalog", "shop")

// run runs produce_shop.py with the schemas in dir.
func (e *env) run(dir, envelope, prefix string, orders int) (stdout, stderr *bytes.Buffer, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.python, filepath.Join("python", "produce_shop.py"),
		"--bootstrap", strings.Join(e.brokers, ","), "--registry", e.regURL, "--schemas", dir,
		"--topic", topic, "--envelope", envelope, "--prefix", prefix, "--orders", strconv.Itoa(orders))
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return stdout, stderr, cmd.Run()
}

// bare is setup without registering anything: an empty registry.
func bare(t *testing.T) *env {
	t.Helper()
	e := &env{brokers: testenv.Kafka(t), python: testenv.Python(t), ids: map[string]int{}}
	e.reg, e.regURL = testenv.RegistryClient(t)
	var err error
	if e.cat, err = events.Load(); err != nil {
		t.Fatal(err)
	}
	return e
}

// produce runs the Python producer and returns what it reports delivered.
func (e *env) produce(t *testing.T, envelope, prefix string, orders int) []sent {
	t.Helper()
	t0 := time.Now()
	stdout, stderr, err := e.run(catalogShop, envelope, prefix, orders)
	if err != nil {
		t.Fatalf("produce_shop.py --envelope %s: %v\n%s", envelope, err, stderr.String())
	}
	var out []sent
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var s sent
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("produce_shop.py printed %q: %v", sc.Text(), err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		t.Fatalf("produce_shop.py delivered nothing\n%s", stderr.String())
	}
	t.Logf("python producer (%s): %d records in %v", envelope, len(out), time.Since(t0).Round(time.Millisecond))
	return out
}

// records reads the topic from the start until every sent record is there.
func (e *env) records(t *testing.T, want []sent) map[pos]*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	missing := map[pos]bool{}
	for _, s := range want {
		missing[pos{s.Partition, s.Offset}] = true
	}
	got := map[pos]*kgo.Record{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for len(missing) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d sent records never read back (e.g. %v)", len(missing), first(missing))
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			got[pos{r.Partition, r.Offset}] = r
			delete(missing, pos{r.Partition, r.Offset})
		})
	}
	return got
}

func first(m map[pos]bool) pos {
	for k := range m {
		return k
	}
	return pos{}
}

// checkWire asserts what every record of a stock Confluent serializer must
// look like, and returns the decoded value per record for further checks:
// key = order ID, partition = Kafka's murmur2 of the key (as Reel's Go
// producers and the Java client place it), magic byte 0 + a 4-byte schema
// ID that the registry resolves to exactly the catalog's current schema of
// the type, and a body that decodes with it to the values sent.
func (e *env) checkWire(t *testing.T, sents []sent, recs map[pos]*kgo.Record) {
	t.Helper()
	ctx := context.Background()
	adm := kadm.NewClient(mustClient(t, e.brokers))
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil || tds[topic].Err != nil {
		t.Fatalf("topic %s: %v %v", topic, err, tds[topic].Err)
	}
	nparts := len(tds[topic].Partitions)
	murmur2 := kgo.StickyKeyPartitioner(nil).ForTopic(topic)

	resolved := map[int]avro.Schema{}
	for _, s := range sents {
		r := recs[pos{s.Partition, s.Offset}]
		where := fmt.Sprintf("%s %s@%d/%d", s.Type, s.Key, s.Partition, s.Offset)
		if string(r.Key) != s.Key {
			t.Fatalf("%s: key %q, sent %q", where, r.Key, s.Key)
		}
		if p := murmur2.Partition(r, nparts); int32(p) != r.Partition {
			t.Errorf("%s: in partition %d, murmur2 of the key says %d", where, r.Partition, p)
		}
		for _, h := range r.Headers {
			if strings.HasPrefix(h.Key, "reel.") {
				t.Fatalf("%s: has Reel header %s", where, h.Key)
			}
		}
		if len(r.Value) < 6 || r.Value[0] != 0 {
			t.Fatalf("%s: not Confluent framed (magic byte 0 + 4-byte schema ID): % x", where, r.Value[:min(len(r.Value), 8)])
		}
		id := int(binary.BigEndian.Uint32(r.Value[1:5]))
		if want := e.ids[s.Type]; id != want {
			t.Fatalf("%s: schema ID %d, but Reel registered the current %s as %d", where, id, s.Type, want)
		}
		sch, ok := resolved[id]
		if !ok {
			ss, err := e.reg.SchemaByID(ctx, id)
			if err != nil {
				t.Fatalf("%s: schema ID %d does not resolve in the registry: %v", where, id, err)
			}
			if sch, err = avro.ParseWithCache(ss.Schema, "", &avro.SchemaCache{}); err != nil {
				t.Fatalf("%s: schema %d does not parse: %v", where, id, err)
			}
			cur := e.cat.Type(s.Type).Current()
			if !bytes.Equal(fp(t, sch), fp(t, cur.Schema)) {
				t.Fatalf("%s: registry schema %d is not the catalog's %s (canonical forms differ)", where, id, cur.Path)
			}
			subjects, err := e.reg.SubjectsByID(ctx, id)
			if err != nil {
				t.Fatalf("%s: subjects of schema %d: %v", where, id, err)
			}
			if !contains(subjects, e.cat.Subject(s.Type)) {
				t.Errorf("%s: schema %d is under subjects %v, want %s (TopicRecordNameStrategy)", where, id, subjects, e.cat.Subject(s.Type))
			}
			resolved[id] = sch
		}
		var got map[string]any
		if err := avro.Unmarshal(sch, r.Value[5:], &got); err != nil {
			t.Fatalf("%s: body does not decode with schema %d: %v", where, id, err)
		}
		for field, raw := range s.Value {
			if g, w := plain(got[field]), strings.Trim(string(raw), `"`); g != w {
				t.Errorf("%s: %s = %s, sent %s", where, field, g, w)
			}
		}
	}
}

// plain renders a decoded Avro value like produce_shop.py's JSON does
// (timestamps as epoch milliseconds).
func plain(v any) string {
	if tm, ok := v.(time.Time); ok {
		return strconv.FormatInt(tm.UnixMilli(), 10)
	}
	return fmt.Sprint(v)
}

func fp(t *testing.T, s avro.Schema) []byte {
	t.Helper()
	b, err := s.FingerprintUsing(avro.CRC64Avro)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func mustClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestPythonAvroSerializerNoHeaders: a Python service with the stock
// AvroSerializer and no headers at all writes Confluent-framed records
// whose schema IDs are the ones Reel registered for the catalog.
func TestPythonAvroSerializerNoHeaders(t *testing.T) {
	e := setup(t)
	sents := e.produce(t, "none", "py-o-", 25)
	recs := e.records(t, sents)
	for _, s := range sents {
		if r := recs[pos{s.Partition, s.Offset}]; len(r.Headers) != 0 {
			t.Fatalf("%s %s: %d headers, the producer sent none", s.Type, s.Key, len(r.Headers))
		}
	}
	e.checkWire(t, sents, recs)
	t.Logf("%d records: Confluent framed, IDs %v resolve to the catalog's schemas", len(sents), e.ids)
}

// TestPythonAvroSerializerCloudEvents: the same with the CloudEvents Kafka
// protocol binding in binary mode: ce_* headers, content-type, and the
// Confluent-framed Avro value.
func TestPythonAvroSerializerCloudEvents(t *testing.T) {
	e := setup(t)
	sents := e.produce(t, "cloudevents", "py-ce-", 25)
	recs := e.records(t, sents)
	ids := map[string]bool{}
	for _, s := range sents {
		r := recs[pos{s.Partition, s.Offset}]
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		where := fmt.Sprintf("%s %s@%d/%d", s.Type, s.Key, s.Partition, s.Offset)
		for k, want := range map[string]string{
			"ce_specversion": "1.0", "ce_type": s.Type, "ce_subject": s.Key,
			"ce_source": "/crosslang/python/produce_shop", "content-type": "application/avro",
			"ce_id": s.Headers["ce_id"], "ce_time": s.Headers["ce_time"],
		} {
			if h[k] != want || want == "" {
				t.Fatalf("%s: header %s = %q, want %q", where, k, h[k], want)
			}
		}
		if ids[h["ce_id"]] {
			t.Fatalf("%s: ce_id %s repeated", where, h["ce_id"])
		}
		ids[h["ce_id"]] = true
		ts, err := time.Parse(time.RFC3339Nano, h["ce_time"])
		if err != nil {
			t.Fatalf("%s: ce_time %q is not RFC 3339: %v", where, h["ce_time"], err)
		}
		field := "placed_at"
		if s.Type == "shop.OrderItemAdded" {
			field = "added_at"
		}
		if want := string(s.Value[field]); strconv.FormatInt(ts.UnixMilli(), 10) != want {
			t.Fatalf("%s: ce_time %s is not the event's %s (%s ms)", where, h["ce_time"], field, want)
		}
	}
	e.checkWire(t, sents, recs)
	t.Logf("%d records with CloudEvents binary-mode headers, Confluent framed", len(sents))
}

// TestPythonBreakingSchemaRefused: a Python service whose OrderPlaced
// changed incompatibly (channel string → int) cannot auto-register it: the
// registry refuses at the FULL_TRANSITIVE level Reel set on the subject,
// the stock serializer raises, and nothing reaches the topic.
func TestPythonBreakingSchemaRefused(t *testing.T) {
	if !testenv.RealRegistry() {
		if testenv.Integration() {
			t.Fatal("REEL_INTEGRATION=1 without REEL_REGISTRY_URL")
		}
		t.Skip("srfake does not enforce compatibility levels; set REEL_REGISTRY_URL (scripts/registry.sh)")
	}
	e := setup(t)
	dir := t.TempDir()
	for name, edit := range map[string]func(string) string{
		"OrderItemAdded.v1.avsc": func(s string) string { return s },
		"OrderPlaced.v2.avsc": func(s string) string {
			return strings.Replace(s, `{"name": "channel", "type": "string", "default": "web"`, `{"name": "channel", "type": "int", "default": 0`, 1)
		},
	} {
		b, err := os.ReadFile(filepath.Join(catalogShop, name))
		if err != nil {
			t.Fatal(err)
		}
		changed := edit(string(b))
		if name == "OrderPlaced.v2.avsc" && changed == string(b) {
			t.Fatal("OrderPlaced.v2.avsc no longer has the channel field this test changes")
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, err := e.run(dir, "none", "py-bad-", 3)
	if err == nil {
		t.Fatalf("produce_shop.py with a breaking OrderPlaced succeeded:\n%s", stdout)
	}
	if !strings.Contains(stderr.String(), "409") && !strings.Contains(stderr.String(), "ncompatible") {
		t.Fatalf("produce_shop.py failed, but not with the registry's refusal: %v\n%s", err, stderr)
	}
	if stdout.Len() > 0 {
		t.Fatalf("records were delivered before the refusal:\n%s", stdout)
	}
	if n, _ := e.reg.SubjectVersions(context.Background(), e.cat.Subject("shop.OrderPlaced")); len(n) != 2 {
		t.Fatalf("%s has versions %v, want the catalog's 2", e.cat.Subject("shop.OrderPlaced"), n)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	t.Logf("refused: %s", lines[len(lines)-1])
}

// TestPythonAvroSerializerRegistersItself: in an empty registry the stock
// serializer registers its schemas itself (auto.register.schemas) under
// <topic>-<record name>, and its records resolve to the catalog's schemas.
// Reel's catalog registration afterwards refuses: the subjects' version 1
// is the catalog's v2 of OrderPlaced, so registry versions would no longer
// equal catalog versions — register the catalog before services
// auto-register.
func TestPythonAvroSerializerRegistersItself(t *testing.T) {
	e := bare(t)
	ctx := context.Background()
	want := []string{e.cat.Subject("shop.OrderItemAdded"), e.cat.Subject("shop.OrderPlaced")}
	for _, r := range e.reg.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatFullTransitive}, want...) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	sents := e.produce(t, "none", "py-self-", 10)
	subjects, err := e.reg.Subjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(subjects, " ") != strings.Join(want, " ") {
		t.Fatalf("subjects %v after auto-registration, want %v", subjects, want)
	}
	for _, typ := range []string{"shop.OrderPlaced", "shop.OrderItemAdded"} {
		ss, err := e.reg.SchemaByVersion(ctx, e.cat.Subject(typ), -1)
		if err != nil {
			t.Fatal(err)
		}
		if ss.Version != 1 {
			t.Fatalf("%s: latest version %d, want 1", ss.Subject, ss.Version)
		}
		e.ids[typ] = ss.ID
	}
	e.checkWire(t, sents, e.records(t, sents))

	_, err = schemas.Register(ctx, e.reg, e.cat, schemas.RegisterOptions{SetCompatibility: true})
	if !errors.Is(err, schemas.ErrIncompatible) || !strings.Contains(err.Error(), "OrderPlaced.v1") {
		t.Fatalf("registering the catalog over the auto-registered subjects: got %v, want ErrIncompatible (version 1 is not OrderPlaced.v1)", err)
	}
	t.Log(err)
	if subjects, _ := e.reg.Subjects(ctx); len(subjects) != 2 {
		t.Fatalf("the refused registration wrote subjects: %v", subjects)
	}
}
