package schemas_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/schemas"
)

// TestLoadWithRegistry: a team's types that live only in its registry join
// the catalog of its directory — every version, from the subject that has
// them all — while a type the directory defines keeps the directory's
// versions.
func TestLoadWithRegistry(t *testing.T) {
	ctx := context.Background()
	cl, _ := testenv.RegistryClient(t)
	const (
		v1 = `{"type":"record","name":"InvoiceIssued","namespace":"com.acme.billing","fields":[{"name":"invoice_id","type":"string"},{"name":"cents","type":"long"}]}`
		v2 = `{"type":"record","name":"InvoiceIssued","namespace":"com.acme.billing","fields":[{"name":"invoice_id","type":"string"},{"name":"cents","type":"long"},{"name":"currency","type":"string","default":"EUR"}]}`
		// The directory's type, also registered (one version) by a producer.
		paid = `{"type":"record","name":"InvoicePaid","namespace":"com.acme.billing","fields":[{"name":"invoice_id","type":"string"}]}`
	)
	for _, s := range []struct{ subject, schema string }{
		{"billing-com.acme.billing.InvoiceIssued", v1},
		{"billing-com.acme.billing.InvoiceIssued", v2},
		{"com.acme.billing.InvoiceIssued", v1}, // also under RecordName, one version
		{"billing-com.acme.billing.InvoicePaid", paid},
	} {
		if _, err := cl.CreateSchema(ctx, s.subject, sr.Schema{Schema: s.schema, Type: sr.TypeAvro}); err != nil {
			t.Fatalf("register %s: %v", s.subject, err)
		}
	}
	dir := fstest.MapFS{
		"com/acme/billing/InvoicePaid.v1.avsc": {Data: []byte(paid)},
		"com/acme/billing/InvoicePaid.v2.avsc": {Data: []byte(`{"type":"record","name":"InvoicePaid","namespace":"com.acme.billing","fields":[{"name":"invoice_id","type":"string"},{"name":"method","type":"string","default":"card"}]}`)},
		"catalog.yaml":                         {Data: []byte("topics:\n  billing:\n    types: [\"com.acme.billing.*\"]\n")},
	}
	cat, err := schemas.LoadWithRegistry(ctx, dir, "billing", cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := cat.EventTypes(); strings.Join(got, ",") != "com.acme.billing.InvoiceIssued,com.acme.billing.InvoicePaid" {
		t.Fatalf("types %v", got)
	}
	issued := cat.Versions("com.acme.billing.InvoiceIssued")
	if len(issued) != 2 || !strings.Contains(issued[1].Text, `"currency"`) {
		t.Errorf("InvoiceIssued from the registry: %d versions, want v1 and v2 of its TopicRecordName subject", len(issued))
	}
	if n := len(cat.Versions("com.acme.billing.InvoicePaid")); n != 2 {
		t.Errorf("InvoicePaid has %d versions, want the directory's 2", n)
	}
	if topic := cat.Topic("com.acme.billing.InvoiceIssued"); topic != "billing" {
		t.Errorf("catalog.yaml's pattern put the registered type on topic %q, want billing", topic)
	}
	if cat.ByFingerprint(issued[1].Fingerprint) == nil {
		t.Error("the registered v2 is not found by its fingerprint")
	}
}
