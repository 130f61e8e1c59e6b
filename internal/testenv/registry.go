package testenv

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// RealRegistry reports whether tests use a real schema registry
// (REEL_REGISTRY_URL).
func RealRegistry() bool { return os.Getenv("REEL_REGISTRY_URL") != "" }

// Registry returns the URL of a Confluent-compatible schema registry API for
// a test, always empty and with the global compatibility level BACKWARD
// (Confluent's default):
//
//   - REEL_REGISTRY_URL set (scripts/registry.sh: Apicurio Registry's
//     /apis/ccompat/v7): that registry, checked reachable and emptied —
//     every subject hard-deleted with its compatibility level. Tests that
//     share it must not run at the same time (scripts/test.sh runs packages
//     one at a time). A level set on a subject that never got a schema is not
//     seen by the Confluent API and so not reset.
//   - REEL_INTEGRATION=1 without REEL_REGISTRY_URL: the test fails.
//   - otherwise: franz-go's srfake in process, closed when the test ends.
//     srfake stores compatibility levels but does not enforce them.
func Registry(t testing.TB) string {
	t.Helper()
	if url := os.Getenv("REEL_REGISTRY_URL"); url != "" {
		cl, err := sr.NewClient(sr.URLs(url))
		if err != nil {
			t.Fatalf("testenv: registry client for %s: %v", url, err)
		}
		if err := resetRegistry(context.Background(), cl); err != nil {
			t.Fatalf("testenv: schema registry %s (REEL_REGISTRY_URL): %v; start one with `bash scripts/registry.sh start`", url, err)
		}
		return url
	}
	if Integration() {
		t.Fatalf("testenv: REEL_INTEGRATION=1 but REEL_REGISTRY_URL is not set; run the suite through scripts/test.sh (it starts scripts/registry.sh)")
	}
	reg := srfake.New()
	t.Cleanup(reg.Close)
	return reg.URL()
}

// RegistryClient returns a franz-go registry client for the test's registry
// (see Registry).
func RegistryClient(t testing.TB) (*sr.Client, string) {
	t.Helper()
	url := Registry(t)
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatalf("testenv: registry client: %v", err)
	}
	return cl, url
}

// resetRegistry empties a real registry the way a fresh srfake starts.
func resetRegistry(ctx context.Context, cl *sr.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	subjects, err := cl.Subjects(sr.WithParams(ctx, sr.ShowDeleted))
	if err != nil {
		return err
	}
	for _, s := range subjects {
		// A hard delete needs a soft delete first; either may find the
		// subject already (soft-)deleted.
		if _, err := cl.DeleteSubject(ctx, s, sr.SoftDelete); err != nil && !notFound(err) {
			return err
		}
		if _, err := cl.DeleteSubject(ctx, s, sr.HardDelete); err != nil && !notFound(err) {
			return err
		}
	}
	if len(subjects) > 0 {
		for _, r := range cl.ResetCompatibility(ctx, subjects...) {
			if r.Err != nil && !notFound(r.Err) {
				return r.Err
			}
		}
	}
	if r := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}); r[0].Err != nil {
		return r[0].Err
	}
	left, err := cl.Subjects(sr.WithParams(ctx, sr.ShowDeleted))
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return errors.New("subjects left after deleting them all: " + strings.Join(left, ", ") +
			" (does the registry allow deletes? scripts/registry.sh enables them)")
	}
	return nil
}

func notFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}
