package declare

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// A CEL result becomes the Go value clickhouse-go inserts for the column;
// integers are range-checked, Date keeps the UTC day, Nullable takes null.
func TestColumnValues(t *testing.T) {
	at := time.Date(2026, 3, 4, 23, 30, 0, 0, time.FixedZone("x", -3600))
	cases := []struct {
		typ  string
		in   ref.Val
		want any
		err  string
	}{
		{"UInt32", types.Int(7), uint32(7), ""},
		{"UInt32", types.Int(-1), nil, "out of range"},
		{"UInt8", types.Int(256), nil, "out of range"},
		{"Int16", types.Int(-32768), int16(-32768), ""},
		{"Int64", types.String("x"), nil, "want int"},
		{"LowCardinality(String)", types.String("a"), "a", ""},
		{"Float64", types.Int(2), float64(2), ""},
		{"Date", types.Timestamp{Time: at}, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), ""},
		{"DateTime64(3, 'UTC')", types.Timestamp{Time: at}, at.UTC(), ""},
		{"Nullable(String)", types.NullValue, (*string)(nil), ""},
		{"Array(UInt16)", types.DefaultTypeAdapter.NativeToValue([]int64{1, 2}), []uint16{1, 2}, ""},
		{"Map(String, Int64)", types.DefaultTypeAdapter.NativeToValue(map[string]int64{"a": 1}), map[string]int64{"a": 1}, ""},
	}
	for _, c := range cases {
		ct, err := parseColType(c.typ)
		if err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		got, err := ct.out(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s ← %v: err %v, want %q", c.typ, c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s ← %v: %#v, %v; want %#v", c.typ, c.in, got, err, c.want)
		}
	}
	s, err := parseColType("Nullable(String)")
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.out(types.String("z"))
	if p, ok := v.(*string); err != nil || !ok || *p != "z" {
		t.Fatalf("Nullable(String) ← z: %#v, %v", v, err)
	}
	for _, bad := range []string{"Blob", "Map(Float64, String)", "Nullable(Array(String))", "Array(String"} {
		if _, err := parseColType(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
