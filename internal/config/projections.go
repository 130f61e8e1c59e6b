package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// ErrNoCatalog: the config names no catalog and the program has none.
var ErrNoCatalog = errors.New("no event catalog: set catalog.dir (env REEL_CATALOG) to a directory of .avsc files, or catalog.registry with schemaRegistry.url")

// LoadCatalog loads catalog.dir, else the program's catalog
// (ProgramCatalog), else fails with ErrNoCatalog; with catalog.registry,
// the schema registry's types join catalog.dir's (or make the whole
// catalog when no dir is set).
func (c *Config) LoadCatalog() (*schemas.Catalog, error) {
	if c.Catalog.Registry {
		cl, err := c.RegistryClient()
		if err != nil {
			return nil, err
		}
		var fsys fs.FS
		source := "registry " + c.SchemaRegistry.URL
		if c.Catalog.Dir != "" {
			fsys, source = os.DirFS(c.Catalog.Dir), c.Catalog.Dir
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return schemas.LoadWithRegistry(ctx, fsys, source, cl)
	}
	if c.Catalog.Dir != "" {
		return schemas.LoadDir(c.Catalog.Dir)
	}
	if c.ProgramCatalog != nil {
		return schemas.LoadNamedFS(c.ProgramCatalog, "embedded catalog")
	}
	return nil, ErrNoCatalog
}

// RegistryClient is a client of schemaRegistry (url, basic auth).
func (c *Config) RegistryClient() (*sr.Client, error) {
	r := c.SchemaRegistry
	if r.URL == "" {
		return nil, errors.New("schemaRegistry.url is not set")
	}
	opts := []sr.ClientOpt{sr.URLs(r.URL), sr.HTTPClient(&http.Client{Timeout: 15 * time.Second})}
	if r.Username != "" {
		pw, err := c.RegistryPassword()
		if err != nil {
			return nil, fmt.Errorf("schemaRegistry.passwordFile: %w", err)
		}
		opts = append(opts, sr.BasicAuth(r.Username, pw))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schemaRegistry: %w", err)
	}
	return cl, nil
}

// loadAll is every projection the config can name: the program's Go ones
// (GoProjections), with the declared ones of projections.dir (checked
// against cat) beside them, a declared one replacing a Go one of its name.
func (c *Config) loadAll(cat *schemas.Catalog) ([]*projection.Projection, error) {
	all := slices.Clone(c.GoProjections)
	if c.Projections.Dir == "" {
		return all, nil
	}
	decl, err := declare.LoadDir(c.Projections.Dir, cat)
	if err != nil {
		return nil, err
	}
	all = slices.DeleteFunc(all, func(p *projection.Projection) bool {
		return slices.ContainsFunc(decl, func(d *projection.Projection) bool { return d.Name == p.Name })
	})
	return append(all, decl...), nil
}

// SelectProjections returns the projections to run: those named by
// projector.projections, else every declared one when projections.dir is
// set, else every Go one. Names are checked against what was
// loaded (Validate reports the same with the config path).
func (c *Config) SelectProjections(cat *schemas.Catalog) ([]*projection.Projection, error) {
	all, err := c.loadAll(cat)
	if err != nil {
		return nil, err
	}
	if len(c.Projector.Projections) == 0 {
		if c.Projections.Dir == "" {
			return all, nil
		}
		return declare.LoadDir(c.Projections.Dir, cat)
	}
	var names []string
	var sel []*projection.Projection
	for _, p := range all {
		names = append(names, p.Name)
	}
	for _, n := range c.Projector.Projections {
		i := slices.IndexFunc(all, func(p *projection.Projection) bool { return p.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("projector.projections: unknown projection %q (have %s)", n, strings.Join(names, ", "))
		}
		sel = append(sel, all[i])
	}
	return sel, nil
}

// AllProjections loads the catalog and returns every projection the
// config can name (Go and declared), for tools that act on one by
// name (rebuild, rollback, dlq, wait, status).
func (c *Config) AllProjections() ([]*projection.Projection, error) {
	cat, err := c.LoadCatalog()
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return c.loadAll(cat)
}

// Projection returns the projection named name among AllProjections.
func (c *Config) Projection(name string) (*projection.Projection, error) {
	all, err := c.AllProjections()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range all {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return nil, fmt.Errorf("no projection %q (have %s)", name, strings.Join(names, ", "))
}
