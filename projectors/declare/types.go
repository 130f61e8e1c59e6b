package declare

import (
	"fmt"
	"maps"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"github.com/hamba/avro/v2"
	"github.com/shopspring/decimal"
)

// Object type names of the non-payload inputs.
const (
	envelopeType = "reel.Envelope"
	stateType    = "reel.State"
)

// provider is the CEL type provider of one projection: every Avro record
// of the catalog as an object type (fields typed from the schema), the
// envelope, and the projection's State row. Values at run time are
// map[string]any, which CEL selects fields of directly; the object types
// exist so the checker knows every field and its type.
type provider struct {
	*types.Registry
	structs map[string]map[string]*types.Type
}

func newProvider() (*provider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &provider{Registry: reg, structs: map[string]map[string]*types.Type{}}
	p.structs[envelopeType] = map[string]*types.Type{
		"type": types.StringType, "version": types.IntType, "id": types.StringType,
		"aggregate_id": types.StringType, "occurred_at": types.TimestampType,
		"correlation_id": types.StringType, "causation_id": types.StringType,
		"source": types.StringType, "subject": types.StringType,
		"topic": types.StringType, "partition": types.IntType, "offset": types.IntType,
	}
	return p, nil
}

func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.structs[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Registry.FindStructType(name)
}

func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if fs, ok := p.structs[name]; ok {
		return slices.Sorted(maps.Keys(fs)), true
	}
	return p.Registry.FindStructFieldNames(name)
}

func (p *provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if fs, ok := p.structs[name]; ok {
		t, ok := fs[field]
		if !ok {
			return nil, false
		}
		// No IsSet/GetFrom: the interpreter then selects from the
		// map[string]any value by key.
		return &types.FieldType{Type: t}, true
	}
	return p.Registry.FindStructFieldType(name, field)
}

// avroType declares an Avro schema's records and returns its CEL type.
//
//	null → null_type; boolean → bool; int, long → int; float, double →
//	double; string, enum, uuid → string; bytes, fixed → bytes; decimal →
//	double; date, timestamp-* → timestamp; time-* → duration; array →
//	list; map → map(string, _); record → object type of its full name;
//	["null", T] with T primitive → nullable T (null or T); other unions → dyn.
func (p *provider) avroType(s avro.Schema) *types.Type {
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		switch l.Logical().Type() {
		case avro.Decimal:
			return types.DoubleType
		case avro.Date, avro.TimestampMillis, avro.TimestampMicros, avro.LocalTimestampMillis, avro.LocalTimestampMicros:
			return types.TimestampType
		case avro.TimeMillis, avro.TimeMicros:
			return types.DurationType
		case avro.UUID:
			return types.StringType
		}
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		name := s.FullName()
		if _, ok := p.structs[name]; !ok {
			fs := map[string]*types.Type{}
			p.structs[name] = fs // before the fields: recursive records
			for _, f := range s.Fields() {
				fs[f.Name()] = p.avroType(f.Type())
			}
		}
		return types.NewObjectType(name)
	case *avro.ArraySchema:
		return types.NewListType(p.avroType(s.Items()))
	case *avro.MapSchema:
		return types.NewMapType(types.StringType, p.avroType(s.Values()))
	case *avro.UnionSchema:
		var branches []avro.Schema
		null := false
		for _, b := range s.Types() {
			if b.Type() == avro.Null {
				null = true
			} else {
				branches = append(branches, b)
			}
		}
		if len(branches) == 1 {
			t := p.avroType(branches[0])
			if null && isWrappable(t) {
				return types.NewNullableType(t)
			}
			if !null {
				return t
			}
		}
		return types.DynType
	case *avro.EnumSchema:
		return types.StringType
	case *avro.FixedSchema:
		return types.BytesType
	}
	switch s.Type() {
	case avro.Null:
		return types.NullType
	case avro.Boolean:
		return types.BoolType
	case avro.Int, avro.Long:
		return types.IntType
	case avro.Float, avro.Double:
		return types.DoubleType
	case avro.String:
		return types.StringType
	case avro.Bytes:
		return types.BytesType
	}
	return types.DynType
}

func isWrappable(t *types.Type) bool {
	switch t.Kind() {
	case types.BoolKind, types.IntKind, types.UintKind, types.DoubleKind, types.StringKind, types.BytesKind:
		return true
	}
	return false
}

// plainValue makes a payload value (schemas.Record.Plain) what CEL expects:
// decimals as float64, fixed as []byte; the rest already is.
func plainValue(v any) any {
	switch x := v.(type) {
	case *big.Rat:
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = plainValue(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = plainValue(e)
		}
		return x
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case float32:
		return float64(x)
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 {
		b := make([]byte, rv.Len())
		reflect.Copy(reflect.ValueOf(b), rv)
		return b
	}
	return v
}

// colType is a ClickHouse column type as the projection sees it: its CEL
// type, how a CEL result becomes the value clickhouse-go inserts, how a
// stored value (read back by tx.State) becomes a CEL input, and the zero
// value of a new aggregate's row.
type colType struct {
	ch   string
	cel  *types.Type
	out  func(ref.Val) (any, error) // CEL result → insert value
	in   func(any) any              // stored value → CEL input
	zero any                        // insert value of an unset column
}

// parseColType understands the ClickHouse types a projection may declare:
// String, FixedString(N), UUID, Enum8/16(…), LowCardinality(T), Bool,
// (U)Int8…64, Float32/64, Decimal*(…), Date, Date32, DateTime[64](…),
// Nullable(T), Array(T), Map(String|integer, T).
func parseColType(s string) (*colType, error) {
	s = strings.TrimSpace(s)
	name, arg, hasArg := strings.Cut(s, "(")
	if hasArg {
		if !strings.HasSuffix(arg, ")") {
			return nil, fmt.Errorf("type %q: unbalanced parentheses", s)
		}
		arg = arg[:len(arg)-1]
	}
	switch name {
	case "LowCardinality":
		inner, err := parseColType(arg)
		if err != nil {
			return nil, err
		}
		c := *inner
		c.ch = s
		return &c, nil
	case "String", "FixedString", "UUID", "Enum8", "Enum16", "IPv4", "IPv6":
		return &colType{ch: s, cel: types.StringType, zero: "", in: id,
			out: func(v ref.Val) (any, error) { return native[string](v) }}, nil
	case "Bool", "Boolean":
		return &colType{ch: s, cel: types.BoolType, zero: false, in: id,
			out: func(v ref.Val) (any, error) { return native[bool](v) }}, nil
	case "Int8":
		return intCol[int8](s), nil
	case "Int16":
		return intCol[int16](s), nil
	case "Int32":
		return intCol[int32](s), nil
	case "Int64":
		return intCol[int64](s), nil
	case "UInt8":
		return intCol[uint8](s), nil
	case "UInt16":
		return intCol[uint16](s), nil
	case "UInt32":
		return intCol[uint32](s), nil
	case "UInt64":
		return intCol[uint64](s), nil
	case "Float32":
		return &colType{ch: s, cel: types.DoubleType, zero: float32(0), in: func(v any) any { return float64(v.(float32)) },
			out: func(v ref.Val) (any, error) { f, err := toFloat(v); return float32(f), err }}, nil
	case "Float64":
		return &colType{ch: s, cel: types.DoubleType, zero: float64(0), in: id,
			out: func(v ref.Val) (any, error) { return toFloat(v) }}, nil
	case "Decimal", "Decimal32", "Decimal64", "Decimal128", "Decimal256":
		return &colType{ch: s, cel: types.DoubleType, zero: decimal.Zero,
			in: func(v any) any { f, _ := v.(decimal.Decimal).Float64(); return f },
			out: func(v ref.Val) (any, error) {
				f, err := toFloat(v)
				return decimal.NewFromFloat(f), err
			}}, nil
	case "Date", "Date32":
		return &colType{ch: s, cel: types.TimestampType, zero: time.Time{}, in: id,
			out: func(v ref.Val) (any, error) {
				t, err := native[time.Time](v)
				t = t.UTC()
				return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), err
			}}, nil
	case "DateTime", "DateTime64":
		return &colType{ch: s, cel: types.TimestampType, zero: time.Time{}, in: id,
			out: func(v ref.Val) (any, error) {
				t, err := native[time.Time](v)
				return t.UTC(), err
			}}, nil
	case "Nullable":
		inner, err := parseColType(arg)
		if err != nil {
			return nil, err
		}
		if !isWrappable(inner.cel) && inner.cel != types.TimestampType {
			return nil, fmt.Errorf("type %q: Nullable of %s is not supported", s, inner.ch)
		}
		t := inner.cel
		if isWrappable(t) {
			t = types.NewNullableType(t)
		} else {
			t = types.DynType
		}
		ptr := reflect.PointerTo(reflect.TypeOf(inner.zero))
		return &colType{ch: s, cel: t, zero: reflect.Zero(ptr).Interface(),
			in: func(v any) any {
				rv := reflect.ValueOf(v)
				if !rv.IsValid() || rv.IsNil() {
					return nil
				}
				return inner.in(rv.Elem().Interface())
			},
			out: func(v ref.Val) (any, error) {
				if v.Type() == types.NullType {
					return reflect.Zero(ptr).Interface(), nil
				}
				x, err := inner.out(v)
				if err != nil {
					return nil, err
				}
				p := reflect.New(ptr.Elem())
				p.Elem().Set(reflect.ValueOf(x))
				return p.Interface(), nil
			}}, nil
	case "Array":
		inner, err := parseColType(arg)
		if err != nil {
			return nil, err
		}
		st := reflect.SliceOf(reflect.TypeOf(inner.zero))
		return &colType{ch: s, cel: types.NewListType(inner.cel), zero: reflect.MakeSlice(st, 0, 0).Interface(),
			in: func(v any) any {
				if celNative(inner.zero) {
					return v // []string, []int64, …: CEL reads it as it is
				}
				rv := reflect.ValueOf(v)
				out := make([]any, rv.Len())
				for i := range out {
					out[i] = inner.in(rv.Index(i).Interface())
				}
				return out
			},
			out: func(v ref.Val) (any, error) {
				l, ok := v.(traits.Lister)
				if !ok {
					return nil, fmt.Errorf("%s: got %s, want a list", s, v.Type().TypeName())
				}
				n := int(l.Size().(types.Int))
				out := reflect.MakeSlice(st, n, n)
				for i := range n {
					x, err := inner.out(l.Get(types.Int(i)))
					if err != nil {
						return nil, err
					}
					out.Index(i).Set(reflect.ValueOf(x))
				}
				return out.Interface(), nil
			}}, nil
	case "Map":
		k, vt, ok := splitTop(arg)
		if !ok {
			return nil, fmt.Errorf("type %q: want Map(K, V)", s)
		}
		kt, err := parseColType(k)
		if err != nil {
			return nil, err
		}
		if kt.cel != types.StringType && kt.cel != types.IntType {
			return nil, fmt.Errorf("type %q: map keys must be strings or integers", s)
		}
		val, err := parseColType(vt)
		if err != nil {
			return nil, err
		}
		mt := reflect.MapOf(reflect.TypeOf(kt.zero), reflect.TypeOf(val.zero))
		return &colType{ch: s, cel: types.NewMapType(kt.cel, val.cel), zero: reflect.MakeMap(mt).Interface(),
			in: func(v any) any {
				if celNative(kt.zero) && celNative(val.zero) {
					return v
				}
				rv := reflect.ValueOf(v)
				out := make(map[any]any, rv.Len())
				it := rv.MapRange()
				for it.Next() {
					out[kt.in(it.Key().Interface())] = val.in(it.Value().Interface())
				}
				return out
			},
			out: func(v ref.Val) (any, error) {
				m, ok := v.(traits.Mapper)
				if !ok {
					return nil, fmt.Errorf("%s: got %s, want a map", s, v.Type().TypeName())
				}
				out := reflect.MakeMapWithSize(mt, int(m.Size().(types.Int)))
				for it := m.Iterator(); it.HasNext() == types.True; {
					key := it.Next()
					kx, err := kt.out(key)
					if err != nil {
						return nil, err
					}
					vx, err := val.out(m.Get(key))
					if err != nil {
						return nil, err
					}
					out.SetMapIndex(reflect.ValueOf(kx), reflect.ValueOf(vx))
				}
				return out.Interface(), nil
			}}, nil
	}
	return nil, fmt.Errorf("unsupported ClickHouse type %q (see docs/projections.md for the supported ones)", s)
}

func id(v any) any { return v }

type integer interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// intCol is an integer column: CEL int (or uint) in, range-checked out.
func intCol[T integer](s string) *colType {
	return &colType{ch: s, cel: types.IntType, zero: T(0),
		in: func(v any) any { return int64(v.(T)) },
		out: func(v ref.Val) (any, error) {
			var i int64
			switch x := v.(type) {
			case types.Int:
				i = int64(x)
			case types.Uint:
				t := T(x)
				if uint64(t) != uint64(x) || t < 0 {
					return nil, fmt.Errorf("%s: %d is out of range", s, uint64(x))
				}
				return t, nil
			default:
				return nil, fmt.Errorf("%s: got %s, want int", s, v.Type().TypeName())
			}
			t := T(i)
			if int64(t) != i || (i < 0 && t > 0) || (i >= 0 && t < 0) {
				return nil, fmt.Errorf("%s: %d is out of range", s, i)
			}
			return t, nil
		}}
}

func native[T any](v ref.Val) (T, error) {
	x, ok := v.Value().(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("got %s, want %T", v.Type().TypeName(), zero)
	}
	return x, nil
}

func toFloat(v ref.Val) (float64, error) {
	switch x := v.(type) {
	case types.Double:
		return float64(x), nil
	case types.Int:
		return float64(x), nil
	case types.Uint:
		return float64(x), nil
	}
	return 0, fmt.Errorf("got %s, want double", v.Type().TypeName())
}

// splitTop splits "K, V" at the top-level comma.
func splitTop(s string) (string, string, bool) {
	depth := 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:]), true
			}
		}
	}
	return "", "", false
}

// assignable reports whether a CEL result type may go into a column of
// type want: the same type, dyn (checked at run time), null into a
// nullable column, or an int into a double column.
func assignable(want, got *types.Type) bool {
	if got.Kind() == types.DynKind || got.Kind() == types.AnyKind || want.Kind() == types.DynKind {
		return true
	}
	if want.IsAssignableType(got) {
		return true
	}
	if want.Kind() == types.DoubleKind && (got.Kind() == types.IntKind || got.Kind() == types.UintKind) {
		return true
	}
	if want.Kind() == types.IntKind && got.Kind() == types.UintKind {
		return true
	}
	return false
}

// rawOK reports whether hamba/avro's generic value of s is already what CEL
// reads: no unions (generic form {"branch": v}), decimals (*big.Rat) or
// fixed ([N]byte) anywhere inside.
func rawOK(s avro.Schema, seen map[string]bool) bool {
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil && l.Logical().Type() == avro.Decimal {
		return false
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		if seen[s.FullName()] {
			return true
		}
		seen[s.FullName()] = true
		for _, f := range s.Fields() {
			if !rawOK(f.Type(), seen) {
				return false
			}
		}
		return true
	case *avro.ArraySchema:
		return rawOK(s.Items(), seen)
	case *avro.MapSchema:
		return rawOK(s.Values(), seen)
	case *avro.UnionSchema, *avro.FixedSchema:
		return false
	}
	return true
}

// celNative reports whether CEL reads values of zero's Go type as the
// column's CEL type without conversion.
func celNative(zero any) bool {
	switch zero.(type) {
	case string, int64, float64, bool, time.Time:
		return true
	}
	return false
}
