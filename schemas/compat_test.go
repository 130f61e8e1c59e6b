package schemas_test

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/schemas"
)

func TestCatalogIsCompatible(t *testing.T) {
	cat, err := events.Load()
	if err != nil {
		t.Fatal(err)
	}
	rep := schemas.CheckCompatibility(cat)
	var b strings.Builder
	_ = rep.WriteTable(&b)
	t.Log("\n" + b.String())
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	multi := 0
	for _, s := range rep.Subjects {
		if s.Versions >= 2 {
			multi++
		}
	}
	if multi < 3 {
		t.Fatalf("only %d event types have several versions, want >= 3", multi)
	}
}

// overlay is the embedded catalog plus the files under dir.
func overlay(t *testing.T, dir string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	for _, root := range []fs.FS{events.FS(), os.DirFS(dir)} {
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
	}
	return m
}

func TestBreakingChangeFailsGate(t *testing.T) {
	cat, err := schemas.LoadFS(overlay(t, "testdata/breaking"))
	if err != nil {
		t.Fatal(err)
	}
	rep := schemas.CheckCompatibility(cat)
	err = rep.Err()
	if !errors.Is(err, schemas.ErrIncompatible) {
		t.Fatalf("gate passed a breaking change: %v", err)
	}
	t.Log(err)
	for _, s := range rep.Subjects {
		if s.Type != "conference.SeatsReserved" {
			if !s.OK() {
				t.Errorf("%s failed too: %v", s.Type, s.Problems)
			}
			continue
		}
		// v4 can read none of v1–v3 (seat_row has no default, quantity type)
		// and none of v1–v3 can read v4 (quantity string vs int).
		if len(s.Problems) != 6 {
			t.Fatalf("%d problems, want 6: %v", len(s.Problems), s.Problems)
		}
	}
	for _, want := range []string{"conference/SeatsReserved.v4.avsc", "seat_row", "cannot read"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}
