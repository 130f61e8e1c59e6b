package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/reel-dev/reel/schemas"
)

// reel schemas check takes any catalog: -dir, the config's catalog.dir,
// or REEL_CATALOG; a breaking version fails it, a broken catalog too.
func TestSchemasCheckAnyCatalog(t *testing.T) {
	ctx := context.Background()
	acme, err := filepath.Abs("../schemas/testdata/acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := demoProgram().cmdSchemas(ctx, []string{"check", "-dir", acme}); err != nil {
		t.Fatalf("check -dir acme: %v", err)
	}
	if err := demoProgram().cmdSchemas(ctx, []string{"list", "-dir", acme}); err != nil {
		t.Fatalf("list -dir acme: %v", err)
	}

	// A copy of the catalog with a breaking version, named in a config file.
	dir := t.TempDir()
	copyTree(t, acme, dir)
	breaking := `{"type":"record","name":"OrderShipped","namespace":"com.acme.orders","fields":[{"name":"order_id","type":"string"},{"name":"carrier","type":"int"}]}`
	if err := os.WriteFile(filepath.Join(dir, "OrderShipped.v2.avsc"), []byte(breaking), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "reel.yaml")
	if err := os.WriteFile(cfg, []byte("catalog:\n  dir: "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := demoProgram().cmdSchemas(ctx, []string{"check", "-config", cfg}); !errors.Is(err, schemas.ErrIncompatible) {
		t.Fatalf("check -config with a breaking version: %v", err)
	}
	t.Setenv("REEL_CATALOG", dir)
	if err := demoProgram().cmdSchemas(ctx, []string{"check"}); !errors.Is(err, schemas.ErrIncompatible) {
		t.Fatalf("check with REEL_CATALOG: %v", err)
	}
	t.Setenv("REEL_CATALOG", filepath.Join(dir, "nope"))
	if err := demoProgram().cmdSchemas(ctx, []string{"check"}); !errors.Is(err, schemas.ErrCatalog) {
		t.Fatalf("check of a missing directory: %v", err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
