package declare

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// LoadDir loads every projection file (*.yaml, *.yml, at any depth) of
// dir, checked against cat. File names in errors are dir-relative paths
// prefixed with dir.
func LoadDir(dir string, cat *schemas.Catalog) ([]*projection.Projection, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("projections: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("projections: %s is not a directory", dir)
	}
	return load(os.DirFS(dir), dir, cat)
}

// LoadFS is LoadDir on a file system (embedded files, tests).
func LoadFS(fsys fs.FS, cat *schemas.Catalog) ([]*projection.Projection, error) {
	return load(fsys, "", cat)
}

// Parse checks one projection file's contents; name is used in errors.
func Parse(name string, data []byte, cat *schemas.Catalog) (*projection.Projection, error) {
	var errs Errors
	p := parseOne(name, data, cat, &errs)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return p, nil
}

func parseOne(name string, data []byte, cat *schemas.Catalog, errs *Errors) *projection.Projection {
	s := parse(name, data, errs)
	if s == nil {
		return nil
	}
	return compile(s, cat, errs)
}

func load(fsys fs.FS, prefix string, cat *schemas.Catalog) ([]*projection.Projection, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// ConfigMap mounts hold ..data and ..<timestamp> links: skip
		// hidden entries, the files are reached through their links.
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("projections: %w", err)
	}
	sort.Strings(files)
	var (
		errs  Errors
		out   []*projection.Projection
		names = map[string]string{}
	)
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		shown := f
		if prefix != "" {
			shown = path.Join(prefix, f)
		}
		if err != nil {
			errs = append(errs, &Error{File: shown, Msg: err.Error()})
			continue
		}
		p := parseOne(shown, data, cat, &errs)
		if p == nil {
			continue
		}
		if other, dup := names[p.Name]; dup {
			errs = append(errs, &Error{File: shown, Line: 1, Msg: fmt.Sprintf("projection %q is also declared in %s", p.Name, other)})
			continue
		}
		names[p.Name] = shown
		out = append(out, p)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	if len(files) == 0 {
		return nil, errors.New("projections: no .yaml files")
	}
	slices.SortFunc(out, func(a, b *projection.Projection) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
