package schemas_test

import (
	"context"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/schemas"
)

// confluent frames an Avro body the way every stock Confluent serializer
// (Java KafkaAvroSerializer, Python AvroSerializer, Go sr.Serde) does.
func confluent(t testing.TB, id int, s avro.Schema, v any) []byte {
	t.Helper()
	body, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatal(err)
	}
	var h sr.ConfluentHeader
	b, err := h.AppendEncode(nil, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, body...)
}

func mustRegister(t testing.TB, cl *sr.Client, subject, schema string) int {
	t.Helper()
	ss, err := cl.CreateSchema(context.Background(), subject, sr.Schema{Schema: schema, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	return ss.ID
}

// A producer in another language: stock Confluent serializer, its own
// subject naming strategy, no Reel headers. Reel finds the writer by ID,
// the type by the record name, and everything else from the record.
func TestConfluentForeignProducer(t *testing.T) {
	ctx := context.Background()
	_, cl := registry(t, sr.CompatBackward)
	cat := acme(t)
	c := acmeCodec(t, schemas.WithRegistry(cl))
	placed := cat.Type("com.acme.orders.OrderPlaced")
	v1, v2 := placed.Versions[0], placed.Versions[1]

	// v3: a version only the registry knows (a field added with a default).
	v3text := strings.Replace(v2.Text, `{"name": "channel"`, `{"name": "gift_wrap", "type": "boolean", "default": false},
    {"name": "channel"`, 1)
	v3, err := avro.ParseWithCache(v3text, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	// A foreign record name that catalog.yaml maps to OrderPlaced.
	legacyText := strings.Replace(v1.Text, `"namespace": "com.acme.orders"`, `"namespace": "com.example.legacy"`, 1)
	legacy, err := avro.ParseWithCache(legacyText, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	legacyOrder := acmeOrder(1)
	legacyOrder["customer"].(map[string]any)["address"] = map[string]any{"com.example.legacy.Address": map[string]any{"city": "Paris", "zip": nil}}
	v3order := acmeOrder(2)
	v3order["gift_wrap"] = true

	cases := []struct {
		name, subject, text string
		schema              avro.Schema
		value               map[string]any
		version             int    // catalog version the writer is, 0: none
		city                string // customer.address.city read back
	}{
		{"TopicNameStrategy", "acme.orders-value", v2.Text, v2.Schema, acmeOrder(2), 2, "Berlin"},
		{"RecordNameStrategy", "com.acme.orders.OrderPlaced", v1.Text, v1.Schema, acmeOrder(1), 1, "Berlin"},
		{"TopicRecordNameStrategy, newer version than the catalog", "acme.orders-com.acme.orders.OrderPlaced", v3text, v3, v3order, 0, "Berlin"},
		{"foreign name mapped in catalog.yaml", "legacy-value", legacyText, legacy, legacyOrder, 0, "Paris"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := mustRegister(t, cl, tc.subject, tc.text)
			rec := &kgo.Record{Topic: "acme.orders", Partition: 1, Offset: int64(100 + i), Timestamp: recTime,
				Key: []byte(orderID), Value: confluent(t, id, tc.schema, tc.value)}
			ev, err := c.Decode(ctx, rec)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != placed.Name || ev.Version != tc.version || ev.Envelope != schemas.EnvelopeDerived ||
				ev.AggregateID != orderID || !ev.OccurredAt.Equal(recTime) || ev.ID != "acme.orders/1/"+strconv.Itoa(100+i) {
				t.Fatalf("envelope %+v", ev)
			}
			city, err := ev.Payload.(*schemas.Record).Lookup("customer.address.city")
			if err != nil || city != tc.city {
				t.Fatalf("city %v %v", city, err)
			}
		})
	}
}

// overlayDir is a directory's files as a MapFS, for tests that change one.
func overlayDir(t testing.TB, dir string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	root := os.DirFS(dir)
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ratOf(t testing.TB, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("not a number: %s", s)
	}
	return r
}

// Bad input from foreign producers fails with a kind a projector parks
// by, and a reason naming what was found.
func TestForeignDecodeErrors(t *testing.T) {
	ctx := context.Background()
	reg, cl := registry(t, sr.CompatBackward)
	cat := acme(t)
	c := acmeCodec(t, schemas.WithRegistry(cl))
	v2 := cat.Type("com.acme.orders.OrderPlaced").Versions[1]
	id := mustRegister(t, cl, "acme.orders-value", v2.Text)
	other := `{"type":"record","name":"Thing","namespace":"com.other","fields":[{"name":"order_id","type":"string"}]}`
	otherID := mustRegister(t, cl, "things-value", other)
	otherSchema := avro.MustParse(other)
	good := confluent(t, id, v2.Schema, acmeOrder(2))
	rec := func(key string, value []byte, headers ...string) *kgo.Record {
		r := &kgo.Record{Topic: "acme.orders", Partition: 0, Offset: 7, Key: []byte(key), Value: value, Timestamp: recTime}
		for i := 0; i+1 < len(headers); i += 2 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
		}
		return r
	}
	cases := []struct {
		name string
		rec  *kgo.Record
		want error
		says string
	}{
		{"unknown record name", rec("k", confluent(t, otherID, otherSchema, map[string]any{"order_id": "k"})), schemas.ErrUnknownEventType, "record com.other.Thing (registry schema ID"},
		{"registry ID that does not exist", rec(orderID, append([]byte{0, 0, 0, 0x30, 0x39}, good[5:]...)), schemas.ErrUnknownSchema, "registry schema ID 12345 does not exist"},
		{"registry ID that does not parse", rec(orderID, []byte{0, 0, 0}), schemas.ErrMalformed, "neither single-object"},
		{"payload not matching its writer schema", rec(orderID, good[:len(good)-6]), schemas.ErrMalformed, "does not match its writer schema registry schema ID"},
		{"trailing bytes", rec(orderID, append(append([]byte(nil), good...), 0, 0)), schemas.ErrMalformed, "trailing bytes"},
		{"key disagrees with the aggregate field", rec("o-other", good), schemas.ErrAggregateMismatch, `record key "o-other" but aggregate field order_id is "` + orderID + `"`},
		{"CloudEvents time invalid", rec(orderID, good, "ce_type", "acme.order.placed", "ce_id", "e-1", "ce_time", "yesterday noon"), schemas.ErrInvalidHeader, `ce_time "yesterday noon" is not an RFC 3339 time`},
		{"CloudEvents without id", rec(orderID, good, "ce_type", "acme.order.placed"), schemas.ErrMissingHeader, "without ce_id"},
		{"CloudEvents JSON data", rec(orderID, good, "ce_type", "x", "ce_id", "e-1", "content-type", "application/json"), schemas.ErrMalformed, `content-type "application/json"`},
		{"CloudEvents type of another catalog type", rec(orderID, good, "ce_type", "com.acme.orders.OrderShipped", "ce_id", "e-1"), schemas.ErrMalformed, "ce_type header says com.acme.orders.OrderShipped but the payload was written as com.acme.orders.OrderPlaced"},
		{"Reel type header unknown", rec(orderID, good, schemas.HeaderType, "com.acme.Nope", schemas.HeaderEventID, "e", schemas.HeaderOccurredAt, "2024-05-01T00:00:00Z"), schemas.ErrUnknownEventType, `reel.type header "com.acme.Nope" is not a type`},
		{"Reel headers without type", rec(orderID, good, schemas.HeaderEventID, "e"), schemas.ErrMissingHeader, "without reel.type"},
		{"no key and no field", &kgo.Record{Topic: "acme.orders", Value: confluent(t, otherID, otherSchema, map[string]any{"order_id": ""})}, schemas.ErrUnknownEventType, "com.other.Thing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := c.Decode(ctx, tc.rec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var de *schemas.DecodeError
			if !errors.As(err, &de) || de.Topic != tc.rec.Topic || de.Offset != tc.rec.Offset || de.Retriable() {
				t.Fatalf("not a non-retriable *DecodeError with the position: %#v", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error does not say %q:\n%v", tc.says, err)
			}
			if ev.ID == "" {
				t.Fatalf("no event ID for the parked row")
			}
			t.Log(err)
		})
	}

	// The registry down: retriable, and nothing cached — the same record
	// decodes once it is back (here: a new registry at another address
	// cannot be had, so only the classification is checked).
	unseen := confluent(t, mustRegister(t, cl, "acme.orders-other", strings.Replace(v2.Text, `"default": "web"`, `"default": "store"`, 1)), v2.Schema, acmeOrder(2))
	reg.Close()
	_, err := c.Decode(ctx, rec(orderID, unseen))
	var de *schemas.DecodeError
	if !errors.Is(err, schemas.ErrRegistryUnavailable) || !errors.As(err, &de) || !de.Retriable() {
		t.Fatalf("registry down: %v", err)
	}
	// IDs seen before still decode from the cache.
	if _, err := c.Decode(ctx, rec(orderID, good)); err != nil {
		t.Fatalf("cached ID with the registry down: %v", err)
	}
}

// catalog.yaml registryTypes: a record the catalog does not have decodes
// generically under its own name instead of parking.
func TestRegistryOnlyTypes(t *testing.T) {
	ctx := context.Background()
	_, cl := registry(t, sr.CompatBackward)
	files := overlayDir(t, "testdata/acme")
	files["catalog.yaml"].Data = append([]byte("registryTypes: true\n"), files["catalog.yaml"].Data...)
	cat, err := schemas.LoadFS(files)
	if err != nil {
		t.Fatal(err)
	}
	c, err := schemas.NewCodec(cat, schemas.WithRegistry(cl))
	if err != nil {
		t.Fatal(err)
	}
	other := `{"type":"record","name":"Thing","namespace":"com.other","fields":[{"name":"size","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":1}}]}`
	id := mustRegister(t, cl, "things-value", other)
	ev, err := c.Decode(ctx, &kgo.Record{Topic: "things", Key: []byte("t-1"), Value: confluent(t, id, avro.MustParse(other), map[string]any{"size": ratOf(t, "12.5")})})
	if err != nil {
		t.Fatal(err)
	}
	r := ev.Payload.(*schemas.Record)
	if ev.Type != "com.other.Thing" || ev.Version != 0 || ev.AggregateID != "t-1" || r.Get("size").(interface{ FloatString(int) string }).FloatString(1) != "12.5" {
		t.Fatalf("%+v %v", ev, r.Get("size"))
	}
}

// CloudEvents binary mode: the envelope from ce_ headers; a ce_type that
// names no catalog type is a label, the writer schema decides; one that
// catalog.yaml maps is the type.
func TestCloudEventsEnvelope(t *testing.T) {
	ctx := context.Background()
	cat := acme(t)
	c := acmeCodec(t)
	v2 := cat.Type("com.acme.orders.OrderPlaced").Versions[1]
	for _, ceType := range []string{"acme.order.placed", "com.acme.orders.OrderPlaced", "order-placed-label"} {
		rec := &kgo.Record{Topic: "acme.orders", Key: []byte(orderID), Value: soeValue(t, v2.Schema, acmeOrder(2)), Timestamp: recTime,
			Headers: []kgo.RecordHeader{
				{Key: "ce_specversion", Value: []byte("1.0")},
				{Key: "ce_type", Value: []byte(ceType)},
				{Key: "ce_id", Value: []byte("evt-77")},
				{Key: "ce_time", Value: []byte("2024-05-01T12:00:00.5+02:00")},
				{Key: "ce_source", Value: []byte("/acme/checkout")},
				{Key: "ce_subject", Value: []byte("order/" + orderID)},
				{Key: "content-type", Value: []byte("application/avro")},
			}}
		ev, err := c.Decode(ctx, rec)
		if err != nil {
			t.Fatalf("%s: %v", ceType, err)
		}
		want := time.Date(2024, 5, 1, 10, 0, 0, 500_000_000, time.UTC)
		if ev.Type != "com.acme.orders.OrderPlaced" || ev.ID != "evt-77" || !ev.OccurredAt.Equal(want) || ev.OccurredAt.Location() != time.UTC ||
			ev.Source != "/acme/checkout" || ev.Subject != "order/"+orderID || ev.Envelope != schemas.EnvelopeCloudEvents {
			t.Fatalf("%s: %+v", ceType, ev)
		}
	}
}

// A topic whose values are bare Avro (no framing), declared in
// catalog.yaml; with no key the aggregate comes from the payload field.
func TestPlainTopic(t *testing.T) {
	ctx := context.Background()
	cat := acme(t)
	c := acmeCodec(t)
	s := cat.Type("com.acme.payments.PaymentCaptured").Current().Schema
	body, err := avro.Marshal(s, map[string]any{"payment_id": int64(9001), "cents": int64(250), "at": t0})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := c.Decode(ctx, &kgo.Record{Topic: "acme.payments.legacy", Value: body, Timestamp: recTime})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "com.acme.payments.PaymentCaptured" || ev.AggregateID != "9001" || ev.Payload.(*schemas.Record).Get("cents") != int64(250) {
		t.Fatalf("%+v", ev)
	}
	// The same bytes on an undeclared topic: no framing, a clear hint.
	_, err = c.Decode(ctx, &kgo.Record{Topic: "acme.payments", Value: body})
	if !errors.Is(err, schemas.ErrMalformed) || !strings.Contains(err.Error(), "topics.acme.payments.plain") {
		t.Fatalf("undeclared plain topic: %v", err)
	}
}
