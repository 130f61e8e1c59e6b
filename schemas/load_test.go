package schemas_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/reel-dev/reel/schemas"
)

func acme(t testing.TB) *schemas.Catalog {
	t.Helper()
	cat, err := schemas.LoadDir("testdata/acme")
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// A team's own catalog: nested and flat files, several namespaces, types
// named by their records, topics and fields from catalog.yaml.
func TestLoadDirAnyLayout(t *testing.T) {
	cat := acme(t)
	want := []string{"com.acme.orders.OrderPlaced", "com.acme.orders.OrderShipped", "com.acme.payments.PaymentCaptured"}
	if got := cat.EventTypes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("types %v, want %v", got, want)
	}
	placed := cat.Type("com.acme.orders.OrderPlaced")
	if len(placed.Versions) != 2 || placed.Current().Path != "com/acme/orders/OrderPlaced.v2.avsc" {
		t.Fatalf("versions %+v", placed.Versions)
	}
	if placed.Topic != "acme.orders" || placed.AggregateField != "order_id" || placed.Compatibility != schemas.BackwardTransitive {
		t.Fatalf("OrderPlaced: topic %q field %q level %s", placed.Topic, placed.AggregateField, placed.Compatibility)
	}
	pay := cat.Type("com.acme.payments.PaymentCaptured")
	if pay.Versions[0].Version != 1 || pay.Topic != "acme.payments.legacy" || pay.AggregateField != "payment_id" {
		t.Fatalf("unversioned flat file: %+v", pay)
	}
	if p := cat.TopicSpec("acme.payments.legacy").Plain; p == nil || p.Type != pay.Name || p.Version != 1 {
		t.Fatalf("plain topic: %+v", cat.TopicSpec("acme.payments.legacy"))
	}
	if got := cat.Resolve("com.example.legacy.OrderPlaced"); got != placed {
		t.Fatalf("mapping resolves to %v", got)
	}
	if cat.Resolve("com.example.Nope") != nil {
		t.Fatal("an unmapped name resolved")
	}
	if got := cat.Subject(placed.Name); got != "acme.orders-com.acme.orders.OrderPlaced" {
		t.Fatalf("subject %q", got)
	}
	if err := schemas.CheckCompatibility(cat).Err(); err != nil {
		t.Fatal(err)
	}
}

// A bare directory of .avsc files, no catalog.yaml: types without topics,
// subjects by record name, FULL_TRANSITIVE.
func TestLoadWithoutManifest(t *testing.T) {
	m := fstest.MapFS{}
	for _, p := range []string{"com/acme/orders/OrderShipped.v1.avsc", "flat/com.acme.payments.PaymentCaptured.avsc"} {
		b, err := os.ReadFile(filepath.Join("testdata/acme", p))
		if err != nil {
			t.Fatal(err)
		}
		m["x/"+p] = &fstest.MapFile{Data: b}
	}
	cat, err := schemas.LoadFS(m)
	if err != nil {
		t.Fatal(err)
	}
	ty := cat.Type("com.acme.orders.OrderShipped")
	if ty.Topic != "" || ty.Compatibility != schemas.FullTransitive || cat.Subject(ty.Name) != ty.Name {
		t.Fatalf("%+v subject %s", ty, cat.Subject(ty.Name))
	}
}

// A Kubernetes ConfigMap mounted as a directory: flat symlinks into a
// hidden timestamped directory through ..data. The hidden entries are
// skipped, the links followed, nothing is loaded twice.
func TestLoadConfigMapMount(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "..2026_01_01_00_00_00.000")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"com.acme.orders.OrderPlaced.v1.avsc": "testdata/acme/com/acme/orders/OrderPlaced.v1.avsc",
		"com.acme.orders.OrderPlaced.v2.avsc": "testdata/acme/com/acme/orders/OrderPlaced.v2.avsc",
		"catalog.yaml":                        "",
	}
	for name, src := range files {
		b := []byte("topics:\n  acme.orders:\n    types: [com.acme.orders.OrderPlaced]\n")
		if src != "" {
			var err error
			if b, err = os.ReadFile(src); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(real, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(real), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := schemas.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ty := cat.Type("com.acme.orders.OrderPlaced")
	if ty == nil || len(ty.Versions) != 2 || ty.Topic != "acme.orders" {
		t.Fatalf("%+v", ty)
	}
}

func TestLoadErrors(t *testing.T) {
	rec := func(name string, fields string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(`{"type":"record","name":"` + name + `","namespace":"x","fields":[` + fields + `]}`)}
	}
	a1 := rec("A", `{"name":"id","type":"string"}`)
	a2 := rec("A", `{"name":"id","type":"string"},{"name":"n","type":"int","default":0}`)
	cases := []struct {
		name string
		fs   fstest.MapFS
		want []string // substrings of the error
	}{
		{"empty", fstest.MapFS{"README": {Data: []byte("hi")}}, []string{"no .avsc files"}},
		{"gap", fstest.MapFS{"A.v1.avsc": a1, "A.v3.avsc": a2}, []string{"A.v3.avsc", "found v3 where v2 belongs"}},
		{"unversioned twin", fstest.MapFS{"A.avsc": a1, "A.v2.avsc": a2}, []string{"A.avsc", "has 2 files"}},
		{"not a record", fstest.MapFS{"E.avsc": {Data: []byte(`{"type":"enum","name":"E","symbols":["X"]}`)}}, []string{"E.avsc", "enum"}},
		{"bad json", fstest.MapFS{"A.v1.avsc": {Data: []byte(`{"type":`)}}, []string{"A.v1.avsc"}},
		{"same schema twice", fstest.MapFS{"A.v1.avsc": a1, "A.v2.avsc": a1}, []string{"same canonical form"}},
		{"manifest typo", fstest.MapFS{"A.v1.avsc": a1, "catalog.yaml": {Data: []byte("topic:\n  t: {types: [x.A]}\n")}}, []string{"catalog.yaml", "topic"}},
		{"manifest names nothing", fstest.MapFS{"A.v1.avsc": a1, "catalog.yaml": {Data: []byte(`
topics:
  t: {types: [x.B, "y.*"], aggregateField: nope}
types:
  x.C: {compatibility: FULL}
mappings:
  foo.A: x.Z
compatibility: SOMETIMES
`)}}, []string{`topics.t.types[0]: "x.B" matches no type`, `topics.t.types[1]: "y.*"`, "types.x.C: no .avsc", "mappings.foo.A", "compatibility: \"SOMETIMES\""}},
		{"aggregate field missing", fstest.MapFS{"A.v1.avsc": a1, "catalog.yaml": {Data: []byte("types:\n  x.A: {aggregateField: order}\n")}}, []string{"types.x.A.aggregateField", `"order" is not a field`}},
		{"type on two topics", fstest.MapFS{"A.v1.avsc": a1, "catalog.yaml": {Data: []byte("topics:\n  t1: {types: [x.A]}\n  t2: {types: [\"x.*\"]}\n")}}, []string{"topics.t2.types[0]", "already on topic t1"}},
		{"plain version out of range", fstest.MapFS{"A.v1.avsc": a1, "catalog.yaml": {Data: []byte("topics:\n  t: {plain: {type: x.A, version: 2}}\n")}}, []string{"topics.t.plain.version"}},
		{"TopicName with two types", fstest.MapFS{"A.v1.avsc": a1, "B.v1.avsc": rec("B", `{"name":"id","type":"string"}`),
			"catalog.yaml": {Data: []byte("subjectNameStrategy: TopicName\ntopics:\n  t: {types: [\"x.*\"]}\n")}}, []string{"TopicName needs one type per topic"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schemas.LoadFS(tc.fs)
			if !errors.Is(err, schemas.ErrCatalog) {
				t.Fatalf("got %v, want ErrCatalog", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// The gate works on any catalog: a breaking version added to the acme
// catalog fails it, naming the field.
func TestGateOnForeignCatalog(t *testing.T) {
	b, err := os.ReadFile("testdata/acme/com/acme/orders/OrderShipped.v1.avsc")
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{"com/acme/orders/OrderShipped.v1.avsc": {Data: b}}
	m["com/acme/orders/OrderShipped.v2.avsc"] = &fstest.MapFile{Data: []byte(`{"type":"record","name":"OrderShipped","namespace":"com.acme.orders",
	 "fields":[{"name":"order_id","type":"string"},{"name":"carrier","type":"string"},{"name":"tracking","type":"string"}]}`)}
	m["catalog.yaml"] = &fstest.MapFile{Data: []byte("topics:\n  acme.orders: {types: [\"com.acme.orders.*\"], aggregateField: order_id}\n")}
	cat, err := schemas.LoadFS(m)
	if err != nil {
		t.Fatal(err)
	}
	err = schemas.CheckCompatibility(cat).Err()
	if !errors.Is(err, schemas.ErrIncompatible) || !strings.Contains(err.Error(), "field tracking") {
		t.Fatalf("gate: %v", err)
	}
}
