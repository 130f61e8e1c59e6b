// Package projection is what a projection's author uses: the Projection
// value (tables, views, Apply), Validate, and the Tx that Apply writes
// into. The runtime that runs projections is package projectors; the SQL of
// Reel's own tables is package projectors/store.
//
//	p := &projection.Projection{
//		Name: "orders", Topics: []string{"shop.orders"},
//		Tables: []projection.Table{{Name: "orders", Columns: cols, OrderBy: "order_id"}},
//		Apply: func(ctx context.Context, tx projection.Tx, ev schemas.Event) error {
//			return tx.Emit("orders", ev.AggregateID, ev.Type)
//		},
//	}
package projection

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/reel-dev/reel/schemas"
)

// Projection is a read model: a plain Go value with its name, the topics it
// reads, the ClickHouse tables and views it owns, and an Apply function.
//
// Apply is called once per event, in order per aggregate, and describes the
// event's effect by calling tx.Emit (and tx.State for current-state tables).
// It must be deterministic: replaying the same events must emit the same
// rows. Side effects (emails, integration events) go through tx.SideEffect,
// which never runs during a replay.
type Projection struct {
	// Name is the stable name. Physical tables are named
	// <name>__<table>__g<generation>; views keep their own names.
	Name string
	// Version is the logic revision: bump it when Apply's output for the
	// same events changes. It is part of the stored definition, so a bump
	// makes the live generation refuse to run until `reel rebuild` (table
	// and view changes are found without it, see Definition).
	Version int
	// Description is shown by `reel status`.
	Description string
	// Topics the projection consumes.
	Topics []string
	// Events restricts Apply to these event types (full Avro names); others
	// are skipped (their position still advances). Empty: every event.
	Events []string
	// Tables written by Apply. At most one may be a State table.
	Tables []Table
	// Views are the stable SQL names users query; they are re-pointed to a
	// new generation atomically at cut-over.
	Views []View
	// Apply turns one event into row changes.
	Apply func(ctx context.Context, tx Tx, ev schemas.Event) error
}

// Column is one user column of a table.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"` // ClickHouse type, e.g. "LowCardinality(String)"
	// Default is a ClickHouse expression for the column's DEFAULT. It is
	// what rows written before the column was added show: adding a column
	// with a default to a running projection is a migration, not a rebuild
	// (see DESIGN.md, "Evolution"). Default "": the type's zero value.
	Default string `json:"default,omitempty"`
}

// Table is one ClickHouse table of a projection. Reel adds the system
// columns _topic, _partition, _offset and _event_ts to every table: they
// are what makes the projection exactly-once (see DESIGN.md).
type Table struct {
	Name    string
	Columns []Column
	// OrderBy is the sorting key. For State tables it is the key column
	// (see StateOrderBy).
	OrderBy string
	// State marks a current-state table: one row per aggregate (the Kafka
	// record key), kept in column Key, read back with tx.State and
	// collapsed by ReplacingMergeTree(_offset). The view named after the
	// table returns the latest row per key without the user writing FINAL.
	State bool
	// Key is the column holding the aggregate ID (State tables only).
	Key string
	// History keeps every version of a State table's rows in
	// <table>_history (MergeTree) for as-of queries.
	History bool
	// Engine for non-State tables. Default "MergeTree".
	Engine string
}

// View is a stable query name. SQL may refer to the projection's tables as
// {{table}}; they are replaced with the physical names of the generation.
type View struct {
	Name string
	SQL  string
}

var identRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Validate reports every mistake in the projection at once.
func (p *Projection) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("projection %q: "+format, append([]any{p.Name}, args...)...))
	}
	if !identRe.MatchString(p.Name) || strings.Contains(p.Name, "__") {
		add("name must match %s without a double underscore", identRe)
	}
	if len(p.Topics) == 0 {
		add("no topics")
	}
	if p.Apply == nil {
		add("no Apply function")
	}
	if len(p.Tables) == 0 {
		add("no tables")
	}
	seen := map[string]bool{}
	states := 0
	for _, t := range p.Tables {
		if !identRe.MatchString(t.Name) || strings.Contains(t.Name, "__") {
			add("table %q: name must match %s without a double underscore", t.Name, identRe)
		}
		if seen[t.Name] {
			add("table %q declared twice", t.Name)
		}
		seen[t.Name] = true
		if len(t.Columns) == 0 {
			add("table %q has no columns", t.Name)
		}
		if t.OrderBy == "" {
			add("table %q has no OrderBy", t.Name)
		}
		cols := map[string]bool{}
		for _, c := range t.Columns {
			if strings.HasPrefix(c.Name, "_") {
				add("table %q column %q: names starting with _ are reserved for Reel's system columns", t.Name, c.Name)
			}
			if c.Type == "" {
				add("table %q column %q has no type", t.Name, c.Name)
			}
			cols[c.Name] = true
		}
		if t.State {
			states++
			if !cols[t.Key] {
				add("state table %q: Key %q is not one of its columns", t.Name, t.Key)
			}
			if t.Engine != "" {
				add("state table %q: Engine is fixed (ReplacingMergeTree)", t.Name)
			}
			if err := StateOrderBy(t.OrderBy, t.Key); err != nil {
				add("state table %q: %v", t.Name, err)
			}
		} else if t.History {
			add("table %q: History needs State", t.Name)
		}
	}
	if states > 1 {
		// One state table per projection keeps recovery exact: the state
		// table is written last in every batch, so it is never ahead of the
		// others (see DESIGN.md, "exactly-once").
		add("%d State tables; at most one is allowed (split the projection)", states)
	}
	for _, v := range p.Views {
		if !identRe.MatchString(v.Name) {
			add("view %q: name must match %s", v.Name, identRe)
		}
		if seen[v.Name] {
			add("view %q has the name of a table", v.Name)
		}
	}
	return errors.Join(errs...)
}

// StateOrderBy checks a State table's sorting key: its key column alone.
// ReplacingMergeTree collapses rows per sorting key, so with any other
// column in it an aggregate whose value of that column changed would keep
// a row per value in the table and its view.
func StateOrderBy(orderBy, key string) error {
	o := strings.TrimSpace(orderBy)
	for strings.HasPrefix(o, "(") && strings.HasSuffix(o, ")") {
		o = strings.TrimSpace(o[1 : len(o)-1])
	}
	if o == "" || o == key {
		return nil // "" is reported as a missing OrderBy
	}
	return fmt.Errorf("OrderBy %q: a State table is sorted by its key %q alone (ReplacingMergeTree keeps one row per sorting key: with other columns in it, an aggregate whose value of them changed would show a row per value); sort other ways in a view or an append table", orderBy, key)
}

// Table returns the index and declaration of the table called name
// (-1, nil: none).
func (p *Projection) Table(name string) (int, *Table) {
	for i := range p.Tables {
		if p.Tables[i].Name == name {
			return i, &p.Tables[i]
		}
	}
	return -1, nil
}

// Wants reports whether Apply is called for events of eventType.
func (p *Projection) Wants(eventType string) bool {
	if len(p.Events) == 0 {
		return true
	}
	for _, e := range p.Events {
		if e == eventType {
			return true
		}
	}
	return false
}
