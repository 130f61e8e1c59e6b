package cli

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/schemas"
)

// cmdSchemas: reel schemas check|list|register.
func (pr *program) cmdSchemas(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: reel schemas check|list|register [flags]", errUsage)
	}
	fset := flag.NewFlagSet("schemas "+args[0], flag.ContinueOnError)
	dir := fset.String("dir", os.Getenv("REEL_CATALOG"), "catalog directory: .avsc files in any layout plus an optional catalog.yaml (env REEL_CATALOG; default: catalog.dir of -config, else the catalog the binary embeds)")
	cfgPath := fset.String("config", "", "YAML config file: its catalog.dir and schemaRegistry are used when flags leave them out")
	var registry, user, pass *string
	var setCompat *bool
	if args[0] == "register" {
		registry = fset.String("registry", os.Getenv("REEL_SCHEMA_REGISTRY"), "Schema Registry URL (env REEL_SCHEMA_REGISTRY)")
		user = fset.String("user", os.Getenv("REEL_SCHEMA_REGISTRY_USER"), "basic auth user")
		pass = fset.String("password", os.Getenv("REEL_SCHEMA_REGISTRY_PASSWORD"), "basic auth password")
		setCompat = fset.Bool("set-compat", false, "set each subject's compatibility to the catalog's level instead of refusing a weaker one")
	}
	if err := fset.Parse(args[1:]); err != nil {
		return err
	}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath, os.Getenv)
		if err != nil {
			return err
		}
		if *dir == "" {
			*dir = cfg.Catalog.Dir
		}
		if registry != nil && *registry == "" {
			*registry = cfg.SchemaRegistry.URL
			if *user == "" {
				*user = cfg.SchemaRegistry.Username
				if *pass == "" {
					if *pass, err = cfg.RegistryPassword(); err != nil {
						return fmt.Errorf("schemaRegistry.passwordFile: %w", err)
					}
				}
			}
		}
	}
	var cat *schemas.Catalog
	var err error
	cat, err = pr.loadCatalog(*dir)
	if err != nil {
		return err
	}
	switch args[0] {
	case "check":
		rep := schemas.CheckCompatibility(cat)
		if err := rep.WriteTable(os.Stdout); err != nil {
			return err
		}
		return rep.Err()
	case "list":
		return listSchemas(cat)
	case "register":
		if *registry == "" {
			return fmt.Errorf("%w: -registry (or REEL_SCHEMA_REGISTRY) is required", errUsage)
		}
		opts := []sr.ClientOpt{sr.URLs(strings.Split(*registry, ",")...)}
		if *user != "" {
			opts = append(opts, sr.BasicAuth(*user, *pass))
		}
		cl, err := sr.NewClient(opts...)
		if err != nil {
			return err
		}
		if err := schemas.CheckCompatibility(cat).Err(); err != nil {
			return err
		}
		regd, err := schemas.Register(ctx, cl, cat, schemas.RegisterOptions{SetCompatibility: *setCompat})
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SUBJECT\tVERSION\tID\tSTATUS")
		for _, r := range regd {
			status := "present"
			if r.New {
				status = "registered"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.Subject, r.Version, r.ID, status)
		}
		_ = tw.Flush()
		return err
	default:
		return fmt.Errorf("%w: unknown schemas command %q (check|list|register)", errUsage, args[0])
	}
}

func listSchemas(cat *schemas.Catalog) error {
	fmt.Printf("catalog: %s\n", cat.Source())
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tTOPIC\tSUBJECT\tAGGREGATE\tVERSION\tFINGERPRINT\tLEVEL\tFILE")
	for _, name := range cat.EventTypes() {
		t := cat.Type(name)
		topic, agg := t.Topic, t.AggregateField
		if topic == "" {
			topic = "-"
		}
		if agg == "" {
			agg = "(key)"
		}
		for _, v := range t.Versions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tv%d\t%016x\t%s\t%s\n", name, topic, cat.Subject(name), agg, v.Version, v.Fingerprint, t.Compatibility, v.Path)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if m := cat.Mappings(); len(m) > 0 {
		fmt.Println("\nmappings (foreign name → catalog type):")
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fmt.Printf("  %s → %s\n", k, m[k])
		}
	}
	return nil
}
