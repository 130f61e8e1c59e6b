package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// ErrNoField: a field name or path that the record's schema does not have.
var ErrNoField = errors.New("no such field")

// Record is an event payload decoded without a Go struct: hamba/avro's
// generic value of a record together with its (reader) schema. Field values
// keep their Avro types:
//
//	null                      nil
//	boolean, int, long        bool, int, int64
//	float, double             float32, float64
//	string, enum, uuid        string
//	bytes                     []byte
//	fixed(N)                  [N]byte
//	decimal (bytes or fixed)  *big.Rat
//	date, timestamp-*         time.Time (UTC)
//	time-millis, time-micros  time.Duration
//	array, map                []any, map[string]any
//	record                    *Record (Get, Lookup); map[string]any (Map, Plain)
//	union                     the value of the branch written (Get, Lookup, Plain)
//
// A Record is read-only while it is shared; Set is for upcasters, which run
// before anyone else sees the event.
type Record struct {
	schema *avro.RecordSchema
	m      map[string]any
}

// NewRecord wraps hamba/avro's generic value of a record (unions in its
// map form, {"<branch name>": value}).
func NewRecord(schema *avro.RecordSchema, m map[string]any) *Record {
	if m == nil {
		m = map[string]any{}
	}
	return &Record{schema: schema, m: m}
}

// Schema is the record's schema: the reader (current) version of its type.
func (r *Record) Schema() *avro.RecordSchema { return r.schema }

// Name is the record's full Avro name.
func (r *Record) Name() string { return r.schema.FullName() }

// Map is hamba/avro's generic value itself, unions in their map form. It is
// what Encode accepts for a generic payload.
func (r *Record) Map() map[string]any { return r.m }

// Has reports whether the schema has the field.
func (r *Record) Has(field string) bool { return fieldOf(r.schema, field) != nil }

// Get returns a field's value (see Record for the types), nil for a field
// the schema does not have or a null.
func (r *Record) Get(field string) any {
	f := fieldOf(r.schema, field)
	if f == nil {
		return nil
	}
	return shape(f.Type(), r.m[field], false)
}

// Lookup follows a dotted path through nested records ("customer.address.city"),
// through unions to the branch written. A path through a null is (nil, nil);
// a name the schema does not have is ErrNoField.
func (r *Record) Lookup(path string) (any, error) {
	cur := r
	parts := strings.Split(path, ".")
	for i, name := range parts {
		f := fieldOf(cur.schema, name)
		if f == nil {
			return nil, fmt.Errorf("%w: %s has no field %q (path %q)", ErrNoField, cur.schema.FullName(), name, path)
		}
		v := shape(f.Type(), cur.m[name], false)
		if i == len(parts)-1 {
			return v, nil
		}
		switch n := v.(type) {
		case nil:
			return nil, nil
		case *Record:
			cur = n
		default:
			return nil, fmt.Errorf("%w: %s.%s is %T, not a record (path %q)", ErrNoField, cur.schema.FullName(), name, v, path)
		}
	}
	return nil, nil
}

// String returns a field that holds a string (string, enum, uuid).
func (r *Record) String(field string) (string, error) {
	v, err := r.Lookup(field)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s.%s is %T, not a string", r.schema.FullName(), field, v)
	}
	return s, nil
}

// Set replaces a field's value. v is in hamba/avro's generic form; for a
// union field a plain value is wrapped in the first branch of its type.
// For upcasters: see Record.
func (r *Record) Set(field string, v any) error {
	f := fieldOf(r.schema, field)
	if f == nil {
		return fmt.Errorf("%w: %s has no field %q", ErrNoField, r.schema.FullName(), field)
	}
	if u, ok := deref(f.Type()).(*avro.UnionSchema); ok && v != nil {
		if _, wrapped := v.(map[string]any); !wrapped || len(u.Types()) == 0 {
			for _, b := range u.Types() {
				if b.Type() != avro.Null {
					v = map[string]any{unionBranchName(b): v}
					break
				}
			}
		}
	}
	r.m[field] = v
	return nil
}

// Plain returns the record as plain Go values: nested records as
// map[string]any, unions unwrapped, everything else as in Record. It
// allocates a copy; use it to hand the payload to code that knows no Avro.
func (r *Record) Plain() map[string]any {
	return shape(r.schema, r.m, true).(map[string]any)
}

// MarshalJSON writes the payload as plain JSON: unions unwrapped, times in
// RFC 3339, decimals as exact numbers with the schema's scale, bytes and
// fixed in base64, durations as Go duration strings.
func (r *Record) MarshalJSON() ([]byte, error) { return json.Marshal(jsonValue(r.schema, r.m)) }

// shape turns a generic value into what Get (plain=false: records as
// *Record) or Plain (records as maps) returns.
func shape(s avro.Schema, v any, plain bool) any {
	if v == nil {
		return nil
	}
	switch s := deref(s).(type) {
	case *avro.UnionSchema:
		b, bv := branch(s, v)
		if b == nil {
			return bv
		}
		return shape(b, bv, plain)
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		if !plain {
			return &Record{schema: s, m: m}
		}
		out := make(map[string]any, len(s.Fields()))
		for _, f := range s.Fields() {
			out[f.Name()] = shape(f.Type(), m[f.Name()], true)
		}
		return out
	case *avro.ArraySchema:
		a, ok := v.([]any)
		if !ok || !needsShape(s.Items()) {
			return v
		}
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = shape(s.Items(), e, plain)
		}
		return out
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok || !needsShape(s.Values()) {
			return v
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = shape(s.Values(), e, plain)
		}
		return out
	}
	return v
}

func needsShape(s avro.Schema) bool {
	switch s := deref(s).(type) {
	case *avro.UnionSchema, *avro.RecordSchema:
		return true
	case *avro.ArraySchema:
		return needsShape(s.Items())
	case *avro.MapSchema:
		return needsShape(s.Values())
	}
	return false
}

// branch finds the union branch of a generic union value
// ({"<branch name>": value}). A value not in map form is returned as is
// with a nil schema.
func branch(u *avro.UnionSchema, v any) (avro.Schema, any) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, v
	}
	for name, bv := range m {
		for _, b := range u.Types() {
			if unionBranchName(b) == name {
				return b, bv
			}
		}
		// Resolved against an older writer the name can be the writer's;
		// a union with one non-null branch is unambiguous.
		var only avro.Schema
		for _, b := range u.Types() {
			if b.Type() != avro.Null {
				if only != nil {
					return nil, bv
				}
				only = b
			}
		}
		return only, bv
	}
	return nil, v
}

// unionBranchName is hamba/avro's key for a union branch in generic
// values: the full name of a named type, else the type with its logical
// type ("long.timestamp-millis").
func unionBranchName(s avro.Schema) string {
	s = deref(s)
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	name := string(s.Type())
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		name += "." + string(l.Logical().Type())
	}
	return name
}

func deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

// jsonValue is the plain JSON form of a generic value.
func jsonValue(s avro.Schema, v any) any {
	if v == nil {
		return nil
	}
	switch s := deref(s).(type) {
	case *avro.UnionSchema:
		b, bv := branch(s, v)
		if b == nil {
			return bv
		}
		return jsonValue(b, bv)
	case *avro.RecordSchema:
		m, _ := v.(map[string]any)
		out := make(map[string]any, len(s.Fields()))
		for _, f := range s.Fields() {
			out[f.Name()] = jsonValue(f.Type(), m[f.Name()])
		}
		return out
	case *avro.ArraySchema:
		a, _ := v.([]any)
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = jsonValue(s.Items(), e)
		}
		return out
	case *avro.MapSchema:
		m, _ := v.(map[string]any)
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = jsonValue(s.Values(), e)
		}
		return out
	case *avro.FixedSchema:
		if rat, ok := v.(*big.Rat); ok {
			return decimalJSON(s.Logical(), rat)
		}
		return fixedBytes(v)
	case *avro.PrimitiveSchema:
		switch x := v.(type) {
		case *big.Rat:
			return decimalJSON(s.Logical(), x)
		case time.Duration:
			return x.String()
		}
	}
	return v
}

func decimalJSON(l avro.LogicalSchema, r *big.Rat) json.Number {
	scale := 0
	if d, ok := l.(*avro.DecimalLogicalSchema); ok {
		scale = d.Scale()
	}
	return json.Number(r.FloatString(scale))
}

// fixedBytes turns a generic fixed value ([N]byte) into a byte slice,
// which encoding/json writes in base64.
func fixedBytes(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Array || rv.Type().Elem().Kind() != reflect.Uint8 {
		return v
	}
	out := make([]byte, rv.Len())
	reflect.Copy(reflect.ValueOf(out), rv)
	return out
}
