package testenv_test

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/internal/testenv"
)

const (
	schemaV1 = `{"type":"record","name":"T","namespace":"reel.testenv","fields":[{"name":"a","type":"string"}]}`
	// v2 adds a field without a default: not BACKWARD compatible.
	schemaV2 = `{"type":"record","name":"T","namespace":"reel.testenv","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}`
)

// TestRegistry pins what tests rely on from testenv.Registry, against the
// real registry (REEL_REGISTRY_URL) and srfake alike: a schema registers
// and resolves by ID, and every call hands out an empty registry at the
// global level BACKWARD, also after a test deleted and re-levelled things.
func TestRegistry(t *testing.T) {
	ctx := context.Background()
	cl, _ := testenv.RegistryClient(t)
	if res := cl.Compatibility(ctx); res[0].Err != nil || res[0].Level != sr.CompatBackward {
		t.Fatalf("global level %v (%v), want BACKWARD", res[0].Level, res[0].Err)
	}
	const subject = "reel.testenv-reel.testenv.T"
	ss, err := cl.CreateSchema(ctx, subject, sr.Schema{Schema: schemaV1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cl.SchemaByID(ctx, ss.ID)
	if err != nil {
		t.Fatalf("schema %d does not resolve: %v", ss.ID, err)
	}
	if got.Type != sr.TypeAvro {
		t.Fatalf("schema %d has type %v", ss.ID, got.Type)
	}
	if res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatNone}, subject); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatFull}); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	// A soft-deleted subject must be gone as well after the reset.
	if _, err := cl.CreateSchema(ctx, "reel.testenv-soft", sr.Schema{Schema: schemaV1}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteSubject(ctx, "reel.testenv-soft", sr.SoftDelete); err != nil {
		t.Fatal(err)
	}

	if !testenv.RealRegistry() {
		return // srfake: a fresh one per call; nothing shared to reset
	}
	cl2, _ := testenv.RegistryClient(t)
	subjects, err := cl2.Subjects(sr.WithParams(ctx, sr.ShowDeleted))
	if err != nil || len(subjects) != 0 {
		t.Fatalf("after reset: subjects %v (%v), want none", subjects, err)
	}
	if res := cl2.Compatibility(ctx); res[0].Level != sr.CompatBackward {
		t.Fatalf("after reset: global level %v, want BACKWARD", res[0].Level)
	}
	// The subject's NONE is gone with it: v1 then the incompatible v2 is refused at the global BACKWARD.
	if _, err := cl2.CreateSchema(ctx, subject, sr.Schema{Schema: schemaV1}); err != nil {
		t.Fatal(err)
	}
	_, err = cl2.CreateSchema(ctx, subject, sr.Schema{Schema: schemaV2})
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != 409 {
		t.Fatalf("incompatible v2 under BACKWARD: got %v, want a 409 from the registry", err)
	}
}
