package schemas

import (
	"context"
	"errors"
	"fmt"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// ErrWeakCompatibility: the registry would accept schema changes the catalog
// forbids, so registering there would make the gate pointless.
var ErrWeakCompatibility = errors.New("registry compatibility level weaker than the catalog's")

// RegisterOptions tune Register.
type RegisterOptions struct {
	// SetCompatibility sets each subject's level to the catalog's level
	// instead of refusing a weaker one. Default false: refuse.
	SetCompatibility bool
}

// Registered is one schema version as the registry knows it.
type Registered struct {
	Type    string
	Subject string
	Version int // catalog version (equals the subject version when the catalog owns the subject)
	ID      int // registry schema ID
	New     bool
}

// Register puts every version of every event type into a Confluent-compatible
// registry under Catalog.Subject, oldest first, so registry versions equal
// catalog versions. Before writing anything it checks, per subject, that the
// registry's compatibility level (subject, else global) is transitive and at
// least the catalog's level, that versions already registered are the
// catalog's (same canonical form, same order), and that the catalog passes
// the gate at the registry's level. Registries that do not check
// compatibility (srfake) are thereby covered by our own check.
func Register(ctx context.Context, cl *sr.Client, cat *Catalog, opts RegisterOptions) ([]Registered, error) {
	type plan struct {
		t        *EventType
		subject  string
		existing int
	}
	var plans []plan
	for _, name := range cat.names {
		t := cat.types[name]
		subject := cat.Subject(name)
		level, err := subjectLevel(ctx, cl, subject)
		if err != nil {
			return nil, err
		}
		want := srLevel(t.Compatibility)
		if !atLeast(level, want) {
			if !opts.SetCompatibility {
				return nil, fmt.Errorf("%w: subject %s is %s, %s needs %s (set it in the registry, or pass -set-compat)", ErrWeakCompatibility, subject, level, name, want)
			}
		} else if level != want {
			// Stricter than declared: fine only if the catalog passes it.
			if rep := checkType(cat, t, Compatibility(level.String())); !rep.OK() {
				return nil, fmt.Errorf("%w: subject %s is %s, stricter than the catalog's %s, and the registry would reject: %s", ErrIncompatible, subject, level, t.Compatibility, rep.Problems[0])
			}
		}
		if rep := checkType(cat, t, t.Compatibility); !rep.OK() {
			return nil, fmt.Errorf("%w: %s: %s", ErrIncompatible, name, rep.Problems[0])
		}
		existing, err := cl.Schemas(ctx, subject)
		var re *sr.ResponseError
		if errors.As(err, &re) && re.ErrorCode == 40401 { // subject not found
			existing, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("schemas: registry: list %s: %w", subject, err)
		}
		if len(existing) > len(t.Versions) {
			return nil, fmt.Errorf("%w: subject %s has %d versions, the catalog only %d: the catalog is older than the registry", ErrIncompatible, subject, len(existing), len(t.Versions))
		}
		for i, ss := range existing {
			got, err := avro.ParseWithCache(ss.Schema.Schema, "", &avro.SchemaCache{})
			if err != nil {
				return nil, fmt.Errorf("schemas: registry: %s version %d does not parse: %w", subject, ss.Version, err)
			}
			fp, err := fingerprint(got)
			if err != nil {
				return nil, err
			}
			if fp != t.Versions[i].Fingerprint {
				return nil, fmt.Errorf("%w: subject %s version %d is not %s (different canonical form)", ErrIncompatible, subject, ss.Version, t.Versions[i].Path)
			}
		}
		plans = append(plans, plan{t: t, subject: subject, existing: len(existing)})
	}

	var out []Registered
	for _, p := range plans {
		if opts.SetCompatibility {
			res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: srLevel(p.t.Compatibility)}, p.subject)
			if err := res[0].Err; err != nil {
				return out, fmt.Errorf("schemas: registry: set %s compatibility: %w", p.subject, err)
			}
		}
		for i, v := range p.t.Versions {
			ss, err := cl.CreateSchema(ctx, p.subject, sr.Schema{Schema: v.Text, Type: sr.TypeAvro})
			if err != nil {
				return out, fmt.Errorf("schemas: registry: register %s as %s: %w", v.Path, p.subject, err)
			}
			out = append(out, Registered{Type: p.t.Name, Subject: p.subject, Version: v.Version, ID: ss.ID, New: i >= p.existing})
		}
	}
	return out, nil
}

func subjectLevel(ctx context.Context, cl *sr.Client, subject string) (sr.CompatibilityLevel, error) {
	res := cl.Compatibility(sr.WithParams(ctx, sr.DefaultToGlobal), subject)
	if err := res[0].Err; err != nil {
		var re *sr.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 404 {
			return 0, fmt.Errorf("schemas: registry: compatibility of %s: %w", subject, err)
		}
		res = cl.Compatibility(ctx) // no subject config: the global one
		if err := res[0].Err; err != nil {
			return 0, fmt.Errorf("schemas: registry: global compatibility: %w", err)
		}
	}
	return res[0].Level, nil
}

func srLevel(c Compatibility) sr.CompatibilityLevel {
	if c == BackwardTransitive {
		return sr.CompatBackwardTransitive
	}
	return sr.CompatFullTransitive
}

// atLeast: have enforces every guarantee of want, transitively.
func atLeast(have, want sr.CompatibilityLevel) bool {
	switch want {
	case sr.CompatFullTransitive:
		return have == sr.CompatFullTransitive
	case sr.CompatBackwardTransitive:
		return have == sr.CompatBackwardTransitive || have == sr.CompatFullTransitive
	}
	return have == want
}
