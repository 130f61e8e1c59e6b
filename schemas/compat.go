package schemas

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/hamba/avro/v2"
)

// ErrIncompatible marks a schema change that breaks the compatibility level
// of its event type.
var ErrIncompatible = errors.New("incompatible schema change")

// CompatProblem is one reader version that cannot read one writer version.
type CompatProblem struct {
	Reader, Writer         int    // versions
	ReaderPath, WriterPath string // .avsc files
	Reason                 string // hamba/avro's explanation
}

func (p CompatProblem) String() string {
	dir := "newer"
	if p.Reader < p.Writer {
		dir = "older"
	}
	return fmt.Sprintf("v%d (%s) cannot read v%d (%s) — %s reader: %s", p.Reader, p.ReaderPath, p.Writer, p.WriterPath, dir, p.Reason)
}

// SubjectReport is the gate's verdict for one event type.
type SubjectReport struct {
	Type     string
	Subject  string        // registry subject, see Catalog.Subject
	Level    Compatibility // level checked
	Versions int
	Pairs    int // reader/writer pairs checked
	Problems []CompatProblem
}

// OK reports whether every checked pair is compatible.
func (s SubjectReport) OK() bool { return len(s.Problems) == 0 }

// CompatReport is the gate's verdict for a catalog.
type CompatReport struct{ Subjects []SubjectReport }

// Err is nil when every subject passed, otherwise an ErrIncompatible error
// listing each failing pair with its files and reason.
func (r CompatReport) Err() error {
	var b strings.Builder
	n := 0
	for _, s := range r.Subjects {
		for _, p := range s.Problems {
			fmt.Fprintf(&b, "\n  %s (%s): %s", s.Type, s.Level, p)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d reader/writer pair(s) fail:%s", ErrIncompatible, n, b.String())
}

// WriteTable prints one line per subject.
func (r CompatReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBJECT\tLEVEL\tVERSIONS\tPAIRS\tRESULT")
	for _, s := range r.Subjects {
		res := "ok"
		if !s.OK() {
			res = fmt.Sprintf("FAIL (%d)", len(s.Problems))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", s.Subject, s.Level, s.Versions, s.Pairs, res)
	}
	return tw.Flush()
}

// CheckCompatibility is the gate: for every event type it checks each pair
// of versions with hamba/avro's checker at the type's level —
// FULL_TRANSITIVE: every version reads every other version;
// BACKWARD_TRANSITIVE: every version reads every older one. The report is
// complete even on failure; use its Err for the verdict.
func CheckCompatibility(cat *Catalog) CompatReport {
	var rep CompatReport
	for _, name := range cat.names {
		t := cat.types[name]
		rep.Subjects = append(rep.Subjects, checkType(cat, t, t.Compatibility))
	}
	return rep
}

func checkType(cat *Catalog, t *EventType, level Compatibility) SubjectReport {
	s := SubjectReport{Type: t.Name, Subject: cat.Subject(t.Name), Level: level, Versions: len(t.Versions)}
	for _, r := range t.Versions {
		for _, w := range t.Versions {
			if r.Version == w.Version || (level == BackwardTransitive && r.Version < w.Version) {
				continue
			}
			s.Pairs++
			if err := compatible(r.Schema, w.Schema); err != nil {
				reason := err.Error()
				if fields := fieldProblems("", r.Schema, w.Schema); len(fields) > 0 {
					reason = strings.Join(fields, "; ")
				}
				s.Problems = append(s.Problems, CompatProblem{
					Reader: r.Version, Writer: w.Version, ReaderPath: r.Path, WriterPath: w.Path, Reason: reason,
				})
			}
		}
	}
	return s
}

// compatible uses a fresh checker per pair because the checker caches by
// canonical fingerprint, which ignores defaults and aliases — exactly what
// version pairs often differ in.
func compatible(reader, writer avro.Schema) error {
	return avro.NewSchemaCompatibility().Compatible(reader, writer)
}

// fieldProblems names the fields behind an incompatibility, because
// hamba/avro's message ("reader schema int not compatible with writer schema
// string") does not say where.
func fieldProblems(prefix string, reader, writer avro.Schema) []string {
	r, ok1 := reader.(*avro.RecordSchema)
	w, ok2 := writer.(*avro.RecordSchema)
	if !ok1 || !ok2 {
		return nil
	}
	var out []string
	for _, rf := range r.Fields() {
		var wf *avro.Field
		for _, f := range w.Fields() {
			if f.Name() == rf.Name() || slices.Contains(rf.Aliases(), f.Name()) {
				wf = f
				break
			}
		}
		name := prefix + rf.Name()
		if wf == nil {
			if !rf.HasDefault() {
				out = append(out, fmt.Sprintf("field %s: missing in the writer and the reader has no default", name))
			}
			continue
		}
		if err := compatible(rf.Type(), wf.Type()); err != nil {
			if nested := fieldProblems(name+".", rf.Type(), wf.Type()); len(nested) > 0 {
				out = append(out, nested...)
			} else {
				out = append(out, fmt.Sprintf("field %s: %v", name, err))
			}
		}
	}
	return out
}
