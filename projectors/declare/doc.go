// Package declare turns projection files (YAML with CEL expressions) into
// projection.Projection values that the stock runtime runs like Go ones:
//
//	cat, _ := schemas.LoadDir("schemas")
//	projs, err := declare.LoadDir("projections", cat) // every error: declare.Errors, file:line:column
//	r, _ := projectors.NewRunner(projs[0], conn, codec, projectors.Brokers(brokers...))
//
// A file declares tables (kind state: current state per aggregate, with
// optional history; kind append: rows), views in SQL, aggregates (views
// summing an append table) and, per catalog event type, a rule: set state
// columns, append rows (optionally one per list element), only when a
// condition holds, park the aggregate, or ignore. Every expression is
// compiled and type-checked against the event type's Avro schema, the
// envelope and the table columns when the file is loaded; Apply then only
// evaluates. docs/projections.md is the reference.
package declare
