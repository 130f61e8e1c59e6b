package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// versioned is a file name with its version: <anything>.v<N>.avsc.
var versioned = regexp.MustCompile(`^(.+)\.v([0-9]+)\.avsc$`)

// LoadDir loads the catalog in a directory on disk; see LoadFS.
func LoadDir(dir string) (*Catalog, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCatalog, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrCatalog, dir)
	}
	return loadFS(os.DirFS(dir), dir)
}

// LoadFS loads a catalog from a tree of .avsc files.
//
//   - Every .avsc anywhere in the tree is one version of one event type;
//     the type is the record's full Avro name (namespace + name), whatever
//     the directory, so any layout works — nested by namespace, or flat as
//     in a Kubernetes ConfigMap.
//   - The version is in the file name: <anything>.v<N>.avsc. A type's
//     versions are 1..n without gaps; the highest is current. A file
//     without .v<N> is version 1 and must be its type's only file.
//   - Names starting with "." are skipped (the ..data links of a mounted
//     ConfigMap, editor files).
//   - catalog.yaml at the root, when present, adds topics, aggregate
//     fields, levels, subject naming and mappings (see docs/events.md).
//
// Every problem is reported at once, wrapped in ErrCatalog.
func LoadFS(fsys fs.FS) (*Catalog, error) { return loadFS(fsys, "catalog") }

// LoadNamedFS is LoadFS for a catalog that messages call source (e.g.
// "embedded catalog": Catalog.Source).
func LoadNamedFS(fsys fs.FS, source string) (*Catalog, error) { return loadFS(fsys, source) }

func loadFS(fsys fs.FS, source string) (*Catalog, error) {
	c := &Catalog{
		source: source, types: map[string]*EventType{}, byFP: map[uint64]*SchemaVersion{},
		topics: map[string]*Topic{}, mappings: map[string]string{}, strategy: TopicRecordName,
	}
	var problems []string
	unversioned := map[string]string{} // type → its file without .v<N>
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(p, ".avsc") {
			return nil
		}
		sv, err := readVersion(fsys, p)
		if err != nil {
			problems = append(problems, err.Error())
			return nil
		}
		if sv.Version == 0 {
			unversioned[sv.Type] = p
			sv.Version = 1
		}
		t := c.types[sv.Type]
		if t == nil {
			t = &EventType{Name: sv.Type, Compatibility: FullTransitive}
			c.types[sv.Type] = t
		}
		t.Versions = append(t.Versions, *sv)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCatalog, source, err)
	}
	seen := map[uint64]string{}
	for name, t := range c.types {
		if p, ok := unversioned[name]; ok && len(t.Versions) > 1 {
			problems = append(problems, fmt.Sprintf("%s: %s has %d files; name each <Name>.v<N>.avsc", p, name, len(t.Versions)))
			continue
		}
		sort.Slice(t.Versions, func(i, j int) bool { return t.Versions[i].Version < t.Versions[j].Version })
		for i, v := range t.Versions {
			if v.Version != i+1 {
				problems = append(problems, fmt.Sprintf("%s: %s versions must be 1..n without gaps or repeats, found v%d where v%d belongs", v.Path, name, v.Version, i+1))
				break
			}
			if other, dup := seen[v.Fingerprint]; dup {
				problems = append(problems, fmt.Sprintf("%s has the same canonical form (CRC-64-AVRO %016x) as %s; a new version must change the wire schema", v.Path, v.Fingerprint, other))
				continue
			}
			seen[v.Fingerprint] = v.Path
		}
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("%w: %s:\n  %s", ErrCatalog, source, strings.Join(problems, "\n  "))
	}
	if len(c.names) == 0 {
		return nil, fmt.Errorf("%w: %s has no .avsc files", ErrCatalog, source)
	}
	for _, name := range c.names {
		t := c.types[name]
		for i := range t.Versions {
			c.byFP[t.Versions[i].Fingerprint] = &t.Versions[i]
		}
	}
	text, err := fs.ReadFile(fsys, ManifestFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %v", ErrCatalog, source, err)
	}
	m, err := parseManifest(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCatalog, source, err)
	}
	if err := m.apply(c); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return c, nil
}

// readVersion parses one .avsc file. Version 0: the name carries none.
func readVersion(fsys fs.FS, p string) (*SchemaVersion, error) {
	ver := 0
	if m := versioned.FindStringSubmatch(path.Base(p)); m != nil {
		v, err := strconv.Atoi(m[2])
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%s: version must be >= 1", p)
		}
		ver = v
	}
	text, err := fs.ReadFile(fsys, p)
	if err != nil {
		return nil, err
	}
	// A fresh cache per file: versions of one type share a name, and a
	// shared cache would let one version's definition leak into another.
	sch, err := avro.ParseBytesWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	rec, ok := sch.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("%s: top-level schema is %s; an event type is a record", p, sch.Type())
	}
	fp, err := fingerprint(rec)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	return &SchemaVersion{Type: rec.FullName(), Version: ver, Path: p, Text: string(text), Schema: rec, Fingerprint: fp}, nil
}

// fingerprint is the CRC-64-AVRO fingerprint as the little-endian integer
// single-object encoding puts on the wire.
func fingerprint(s avro.Schema) (uint64, error) {
	b, err := s.FingerprintUsing(avro.CRC64AvroLE)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// checkAggregateField: the field exists in every version and holds a
// string, a UUID or an integer (the key is text).
func checkAggregateField(t *EventType) error {
	for _, v := range t.Versions {
		f := fieldOf(v.Schema.(*avro.RecordSchema), t.AggregateField)
		if f == nil {
			return fmt.Errorf("%q is not a field of %s", t.AggregateField, v.Path)
		}
		switch f.Type().Type() {
		case avro.String, avro.Int, avro.Long:
		default:
			return fmt.Errorf("%s.%s is %s; an aggregate ID is a string, uuid, int or long", v.Path, t.AggregateField, f.Type().Type())
		}
	}
	return nil
}

func fieldOf(r *avro.RecordSchema, name string) *avro.Field {
	for _, f := range r.Fields() {
		if f.Name() == name {
			return f
		}
	}
	return nil
}
