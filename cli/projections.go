package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/schemas"
)

// cmdProjections checks or lists declared projections:
//
//	reel projections check DIR [-catalog DIR]   # every error as file:line:column, exit 1 if any
//	reel projections list DIR [-catalog DIR]    # names, topics, tables and views
func (pr *program) cmdProjections(_ context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "check" && args[0] != "list") {
		return fmt.Errorf("%w: reel projections check|list DIR [-catalog DIR] [-config reel.yaml]", errUsage)
	}
	fs := flag.NewFlagSet("projections "+args[0], flag.ContinueOnError)
	catDir := fs.String("catalog", os.Getenv("REEL_CATALOG"), "catalog directory (env REEL_CATALOG; default: catalog.dir of -config, else the catalog the binary embeds)")
	cfgPath := fs.String("config", "", "YAML config file: its catalog.dir and projections.dir are used when arguments leave them out")
	// Flags may come after DIR.
	rest := args[1:]
	var dirs []string
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
		if len(rest) > 0 {
			dirs, rest = append(dirs, rest[0]), rest[1:]
		}
	}
	dir := ""
	if len(dirs) > 1 {
		return fmt.Errorf("%w: one projections directory, got %v", errUsage, dirs)
	} else if len(dirs) == 1 {
		dir = dirs[0]
	}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath, os.Getenv)
		if err != nil {
			return err
		}
		if *catDir == "" {
			*catDir = cfg.Catalog.Dir
		}
		if dir == "" {
			dir = cfg.Projections.Dir
		}
	}
	if dir == "" {
		dir = os.Getenv("REEL_PROJECTIONS_DIR")
	}
	if dir == "" {
		return fmt.Errorf("%w: no projections directory (argument, projections.dir of -config or REEL_PROJECTIONS_DIR)", errUsage)
	}
	return pr.checkProjections(os.Stdout, os.Stderr, dir, *catDir, args[0] == "list")
}

func (pr *program) checkProjections(out, errw io.Writer, dir, catDir string, list bool) error {
	var cat *schemas.Catalog
	var err error
	cat, err = pr.loadCatalog(catDir)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	ps, err := declare.LoadDir(dir, cat)
	if err != nil {
		var es declare.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(errw, e)
			}
			return fmt.Errorf("%d error(s) in %s", len(es), dir)
		}
		return err
	}
	for _, p := range ps {
		if !list {
			fmt.Fprintf(out, "%s: OK\n", p.Name)
			continue
		}
		var tables, views []string
		for _, t := range p.Tables {
			tables = append(tables, t.Name)
		}
		for _, v := range p.Views {
			views = append(views, v.Name)
		}
		fmt.Fprintf(out, "%s\tv%d\ttopics %s\ttables %s\tviews %s\n", p.Name, p.Version,
			strings.Join(p.Topics, ","), strings.Join(tables, ","), strings.Join(views, ","))
	}
	fmt.Fprintf(out, "%d projection(s) checked against catalog %s\n", len(ps), cat.Source())
	return nil
}
