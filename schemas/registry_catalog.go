package schemas

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing/fstest"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// LoadWithRegistry loads the catalog of fsys (nil: none) together with
// every Avro record type registered under the schema registry's subjects
// that fsys does not define: a team whose schemas live in its registry
// points Reel at the registry instead of (or beside) a directory.
//
//   - A registered type's versions are its subject's versions, oldest
//     first; when a type is registered under several subjects (one per
//     topic with TopicRecordName, or also under RecordName), the subject
//     with the most versions is used.
//   - A type fsys defines keeps fsys's versions; the registry adds nothing
//     to it.
//   - catalog.yaml (in fsys) applies to registered types as to files: its
//     topics' type patterns may name them.
//   - Schemas with references, and subjects of other schema types, are
//     skipped: the first are reported, the second are not events of Reel.
//
// The registry is read once, at load; the catalog is immutable afterwards.
func LoadWithRegistry(ctx context.Context, fsys fs.FS, source string, cl *sr.Client) (*Catalog, error) {
	files := fstest.MapFS{}
	own := map[string]bool{}
	if fsys != nil {
		err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			files[p] = &fstest.MapFile{Data: b}
			if strings.HasSuffix(p, ".avsc") && !strings.HasPrefix(path.Base(p), ".") {
				if sv, err := readVersion(fsys, p); err == nil {
					own[sv.Type] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCatalog, err)
		}
	}
	reg, err := registryTypes(ctx, cl, own)
	if err != nil {
		return nil, err
	}
	for name, texts := range reg {
		for i, text := range texts {
			// "registry/" keeps them apart from fsys's files; the loader
			// reads types from the records, not from paths.
			files[fmt.Sprintf("registry/%s.v%d.avsc", name, i+1)] = &fstest.MapFile{Data: []byte(text)}
		}
	}
	c, err := loadFS(files, source+" + registry")
	if err != nil {
		return nil, err
	}
	return c, nil
}

// registryTypes returns, per record type not in skip, the schema texts of
// its versions from the subject that has most of them.
func registryTypes(ctx context.Context, cl *sr.Client, skip map[string]bool) (map[string][]string, error) {
	subjects, err := cl.Subjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: list the schema registry's subjects: %v", ErrCatalog, err)
	}
	sort.Strings(subjects)
	type candidate struct {
		subject string
		texts   []string
	}
	best := map[string]candidate{}
	var problems []string
	for _, subject := range subjects {
		versions, err := cl.Schemas(ctx, subject)
		if err != nil {
			return nil, fmt.Errorf("%w: schema registry subject %s: %v", ErrCatalog, subject, err)
		}
		byType := map[string][]string{}
		for _, v := range versions {
			if v.Type != sr.TypeAvro && v.Type != 0 {
				continue
			}
			if len(v.References) > 0 {
				problems = append(problems, fmt.Sprintf("subject %s version %d: schema references are not loaded into a catalog; put the type in the catalog directory", subject, v.Version))
				continue
			}
			sch, err := avro.ParseWithCache(v.Schema.Schema, "", &avro.SchemaCache{})
			if err != nil {
				problems = append(problems, fmt.Sprintf("subject %s version %d: %v", subject, v.Version, err))
				continue
			}
			rec, ok := sch.(*avro.RecordSchema)
			if !ok || skip[rec.FullName()] {
				continue
			}
			byType[rec.FullName()] = append(byType[rec.FullName()], v.Schema.Schema)
		}
		for name, texts := range byType {
			if cur, ok := best[name]; !ok || len(texts) > len(cur.texts) {
				best[name] = candidate{subject, texts}
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: schema registry:\n  %s", ErrCatalog, strings.Join(problems, "\n  "))
	}
	out := make(map[string][]string, len(best))
	for name, c := range best {
		out[name] = c.texts
	}
	return out, nil
}
