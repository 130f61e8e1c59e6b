package schemas_test

import (
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/schemas"
)

func registry(t testing.TB, global sr.CompatibilityLevel) (*srfake.Registry, *sr.Client) {
	t.Helper()
	reg := srfake.New(srfake.WithGlobalCompat(global))
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return reg, cl
}

func TestRegisterRefusesWeakLevel(t *testing.T) {
	ctx := context.Background()
	cat, _ := events.Load()
	reg, cl := registry(t, sr.CompatBackward)
	_, err := schemas.Register(ctx, cl, cat, schemas.RegisterOptions{})
	if !errors.Is(err, schemas.ErrWeakCompatibility) {
		t.Fatalf("got %v, want ErrWeakCompatibility", err)
	}
	t.Log(err)
	if reg.SubjectExists(cat.Subject("shop.OrderPlaced")) {
		t.Fatal("something was registered before the refusal")
	}
}

func TestRegisterRefusesStricterLevelTheCatalogFails(t *testing.T) {
	ctx := context.Background()
	cat, _ := events.Load()
	_, cl := registry(t, sr.CompatFullTransitive)
	// SeatsAdded widened int→long: not FULL compatible, the registry would
	// reject v2, so we refuse up front.
	_, err := schemas.Register(ctx, cl, cat, schemas.RegisterOptions{})
	if !errors.Is(err, schemas.ErrIncompatible) {
		t.Fatalf("got %v, want ErrIncompatible", err)
	}
	t.Log(err)
}

// registered returns a registry holding the whole catalog.
func registered(t testing.TB) (*schemas.Catalog, *sr.Client, []schemas.Registered) {
	t.Helper()
	ctx := context.Background()
	cat, _ := events.Load()
	reg, cl := registry(t, sr.CompatFullTransitive)
	if err := reg.SetCompat(cat.Subject("conference.SeatsAdded"), sr.CompatBackwardTransitive); err != nil {
		t.Fatal(err)
	}
	got, err := schemas.Register(ctx, cl, cat, schemas.RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cat, cl, got
}

func TestRegister(t *testing.T) {
	ctx := context.Background()
	cat, cl, got := registered(t)
	want := 0
	for _, typ := range cat.EventTypes() {
		want += len(cat.Versions(typ))
	}
	if len(got) != want {
		t.Fatalf("registered %d schemas, want %d", len(got), want)
	}
	again, err := schemas.Register(ctx, cl, cat, schemas.RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].New || again[i].ID != got[i].ID {
			t.Fatalf("second registration changed %+v to %+v", got[i], again[i])
		}
	}
}

func TestRegisterSetsCompatibility(t *testing.T) {
	ctx := context.Background()
	cat, _ := events.Load()
	_, cl := registry(t, sr.CompatNone)
	if _, err := schemas.Register(ctx, cl, cat, schemas.RegisterOptions{SetCompatibility: true}); err != nil {
		t.Fatal(err)
	}
	res := cl.Compatibility(ctx, cat.Subject("conference.SeatsAdded"), cat.Subject("shop.OrderPlaced"))
	if res[0].Level != sr.CompatBackwardTransitive || res[1].Level != sr.CompatFullTransitive {
		t.Fatalf("levels %v %v", res[0].Level, res[1].Level)
	}
}

func TestConfluentRoundTrip(t *testing.T) {
	ctx := context.Background()
	cat, cl, regd := registered(t)
	c, err := schemas.NewCodec(cat, schemas.WithRegistry(cl), schemas.WithBindings(events.Bindings()...))
	if err != nil {
		t.Fatal(err)
	}
	in := schemas.NewEvent(&events.PaymentConfirmed{OrderID: "o-1", PaymentID: "p", AmountCents: 100, Currency: "EUR", ConfirmedAt: t0, Method: "card"}, schemas.At(occurred))
	rec, err := c.Encode(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Value[0] != 0 {
		t.Fatalf("not Confluent framed: %x", rec.Value[:5])
	}
	// A fresh codec (another process) learns the ID from the registry.
	c2, _ := schemas.NewCodec(cat, schemas.WithRegistry(cl), schemas.WithBindings(events.Bindings()...))
	out, err := c2.Decode(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	in.Version = 2
	if !reflect.DeepEqual(in, exported(out)) {
		t.Fatalf("\n got %+v\nwant %+v", out, in)
	}

	// An old version framed with its registry ID resolves to the current struct.
	var v1ID int
	for _, r := range regd {
		if r.Type == "conference.SeatsReserved" && r.Version == 1 {
			v1ID = r.ID
		}
	}
	old := fixtureRecord(t, "conference.SeatsReserved", 1, occurred.Format(time.RFC3339Nano))
	body := old.Value[10:]
	old.Value = binary.BigEndian.AppendUint32([]byte{0}, uint32(v1ID))
	old.Value = append(old.Value, body...)
	ev, err := c2.Decode(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if p := ev.Payload.(*events.SeatsReserved); ev.Version != 1 || p.AttendeeEmail != "ann@example.com" || !p.ReservedAt.Equal(occurred) {
		t.Fatalf("v1 via registry: %+v %+v", ev, p)
	}

	// Single-object records still decode with a registry codec.
	soe, _ := newCodec(t).Encode(ctx, in)
	if _, err := c2.Decode(ctx, soe); err != nil {
		t.Fatal(err)
	}

	unknown := &kgo.Record{Topic: "shop.orders", Key: rec.Key, Headers: rec.Headers, Value: append([]byte{0, 0, 0, 0x7f, 0xff}, rec.Value[5:]...)}
	if _, err := c2.Decode(ctx, unknown); !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Fatalf("unknown ID: %v", err)
	}
}
