package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/reel-dev/reel/projectors/projection"
)

// Definition is the part of a Projection that shapes its ClickHouse objects
// and its output: tables (columns, defaults, engine, keys, ORDER BY), views
// and the logic version. It is stored with every generation when the
// generation's tables are created (see StoredDefinition), so that what a
// code change does to a running generation is computed by Diff, not
// guessed. Apply itself is code: its changes are declared by bumping
// Projection.Version.
type Definition struct {
	Projection string            `json:"projection"`
	Version    int               `json:"version"`
	Tables     []TableDef        `json:"tables"` // sorted by name
	Views      []projection.View `json:"views"`  // sorted by name; SQL as declared ({{table}} unexpanded)
}

// TableDef is one table of a Definition.
type TableDef struct {
	Name    string              `json:"name"`
	Columns []projection.Column `json:"columns"` // declared order
	OrderBy string              `json:"order_by"`
	Engine  string              `json:"engine"` // as created: "ReplacingMergeTree(_offset)" for the State table
	State   bool                `json:"state,omitempty"`
	Key     string              `json:"key,omitempty"`
	History bool                `json:"history,omitempty"`
}

// DefinitionOf returns p's definition in canonical form.
func DefinitionOf(p *projection.Projection) Definition {
	d := Definition{Projection: p.Name, Version: p.Version}
	for _, t := range p.Tables {
		td := TableDef{Name: t.Name, Columns: append([]projection.Column(nil), t.Columns...), OrderBy: normSQL(t.OrderBy),
			State: t.State, Key: t.Key, History: t.History, Engine: t.Engine}
		if t.State {
			td.Engine = "ReplacingMergeTree(_offset)"
		} else if td.Engine == "" {
			td.Engine = "MergeTree"
		}
		d.Tables = append(d.Tables, td)
	}
	for _, v := range p.Views {
		d.Views = append(d.Views, projection.View{Name: v.Name, SQL: strings.TrimSpace(v.SQL)})
	}
	slices.SortFunc(d.Tables, func(a, b TableDef) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(d.Views, func(a, b projection.View) int { return strings.Compare(a.Name, b.Name) })
	return d
}

// Canonical is the definition's stored form: JSON with a fixed field and
// element order, so equal definitions have equal bytes.
func (d Definition) Canonical() string {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // only strings, ints and bools
	}
	return string(b)
}

// ParseDefinition reads a stored definition.
func ParseDefinition(s string) (Definition, error) {
	var d Definition
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return d, fmt.Errorf("stored definition: %w", err)
	}
	return d, nil
}

func (d Definition) table(name string) *TableDef {
	for i := range d.Tables {
		if d.Tables[i].Name == name {
			return &d.Tables[i]
		}
	}
	return nil
}

// normType compares types as ClickHouse prints them ("Decimal(18,2)" and
// "Decimal(18, 2)" are one type).
func normType(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, ",", ", ")), "")
}

// normSQL makes whitespace differences in an expression irrelevant.
func normSQL(s string) string { return strings.Join(strings.Fields(s), " ") }

// ChangeKind names one difference between two definitions.
type ChangeKind string

// Additive changes are applied to a running generation by a migration;
// the others need a new generation (`reel rebuild`).
const (
	AddColumn     ChangeKind = "add column"     // additive: ALTER … ADD COLUMN on the table(s) and inbox(es)
	ChangeDefault ChangeKind = "change default" // additive: ALTER … MODIFY COLUMN … DEFAULT (existing rows keep their values)
	AddTable      ChangeKind = "add table"      // additive for projections without a State table: created and filled from history by the runner
	AddView       ChangeKind = "add view"       // additive: CREATE VIEW
	ChangeView    ChangeKind = "change view"    // additive: CREATE OR REPLACE VIEW
	DropView      ChangeKind = "drop view"      // additive: DROP VIEW (readers of it break: named in the plan)

	DropColumn   ChangeKind = "drop column" // also a rename: the old name is gone
	RetypeColumn ChangeKind = "retype column"
	DropTable    ChangeKind = "drop table"
	ChangeTable  ChangeKind = "change table" // ORDER BY, engine, State, Key or History
	ChangeLogic  ChangeKind = "change logic" // Projection.Version
	// AddStateTable is a new table of a projection that has a State table:
	// filling it from history needs the state as of every past event,
	// which only a replay from the beginning has.
	AddStateTable ChangeKind = "add table (needs state)"
)

// Destructive reports whether the change needs a new generation.
func (k ChangeKind) Destructive() bool {
	switch k {
	case AddColumn, ChangeDefault, AddTable, AddView, ChangeView, DropView:
		return false
	}
	return true
}

// Change is one difference between the stored and the current definition.
type Change struct {
	Kind   ChangeKind
	Table  string // table or view name
	Column string
	From   string // what the stored definition says
	To     string // what the current one says
}

func (c Change) String() string {
	what := c.Table
	if c.Column != "" {
		what += "." + c.Column
	}
	switch {
	case c.From != "" && c.To != "":
		return fmt.Sprintf("%s %s: %s → %s", c.Kind, what, c.From, c.To)
	case c.To != "":
		return fmt.Sprintf("%s %s: %s", c.Kind, what, c.To)
	case c.From != "":
		return fmt.Sprintf("%s %s (was %s)", c.Kind, what, c.From)
	}
	return fmt.Sprintf("%s %s", c.Kind, what)
}

// Diff computes what turns definition old into cur, in a stable order:
// logic, tables (by name), columns (in cur's order, then dropped ones),
// views (by name).
func Diff(old, cur Definition) []Change {
	var out []Change
	if old.Version != cur.Version {
		out = append(out, Change{Kind: ChangeLogic, Table: cur.Projection, From: fmt.Sprintf("version %d", old.Version), To: fmt.Sprintf("version %d", cur.Version)})
	}
	hasState := false
	for _, t := range old.Tables {
		hasState = hasState || t.State
	}
	for _, t := range old.Tables {
		if cur.table(t.Name) == nil {
			out = append(out, Change{Kind: DropTable, Table: t.Name})
		}
	}
	for _, t := range cur.Tables {
		o := old.table(t.Name)
		if o == nil {
			k := AddTable
			if hasState || t.State {
				k = AddStateTable
			}
			out = append(out, Change{Kind: k, Table: t.Name, To: ColumnList(t.Columns)})
			continue
		}
		for _, f := range []struct{ what, a, b string }{
			{"ORDER BY", o.OrderBy, t.OrderBy},
			{"engine", o.Engine, t.Engine},
			{"State", fmt.Sprint(o.State), fmt.Sprint(t.State)},
			{"Key", o.Key, t.Key},
			{"History", fmt.Sprint(o.History), fmt.Sprint(t.History)},
		} {
			if f.a != f.b {
				out = append(out, Change{Kind: ChangeTable, Table: t.Name, From: f.what + " " + f.a, To: f.what + " " + f.b})
			}
		}
		oc := map[string]projection.Column{}
		for _, c := range o.Columns {
			oc[c.Name] = c
		}
		cc := map[string]bool{}
		for _, c := range t.Columns {
			cc[c.Name] = true
			prev, ok := oc[c.Name]
			switch {
			case !ok:
				out = append(out, Change{Kind: AddColumn, Table: t.Name, Column: c.Name, To: c.Type + defaultClause(c)})
			case normType(prev.Type) != normType(c.Type):
				out = append(out, Change{Kind: RetypeColumn, Table: t.Name, Column: c.Name, From: prev.Type, To: c.Type})
			case normSQL(prev.Default) != normSQL(c.Default):
				out = append(out, Change{Kind: ChangeDefault, Table: t.Name, Column: c.Name, From: orNone(prev.Default), To: orNone(c.Default)})
			}
		}
		for _, c := range o.Columns {
			if !cc[c.Name] {
				out = append(out, Change{Kind: DropColumn, Table: t.Name, Column: c.Name, From: c.Type})
			}
		}
	}
	ov := map[string]string{}
	for _, v := range old.Views {
		ov[v.Name] = v.SQL
	}
	cv := map[string]bool{}
	for _, v := range cur.Views {
		cv[v.Name] = true
		sql, ok := ov[v.Name]
		switch {
		case !ok:
			out = append(out, Change{Kind: AddView, Table: v.Name})
		case normSQL(sql) != normSQL(v.SQL):
			out = append(out, Change{Kind: ChangeView, Table: v.Name})
		}
	}
	for _, v := range old.Views {
		if !cv[v.Name] {
			out = append(out, Change{Kind: DropView, Table: v.Name})
		}
	}
	return out
}

func defaultClause(c projection.Column) string {
	if c.Default == "" {
		return " (existing rows: the type's default)"
	}
	return " DEFAULT " + c.Default
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Destructive returns the changes among cs that need a new generation.
func Destructive(cs []Change) []Change {
	var out []Change
	for _, c := range cs {
		if c.Kind.Destructive() {
			out = append(out, c)
		}
	}
	return out
}
