//go:build chdb

package chserver

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// row holds one value of every column type Reel uses.
type row struct {
	S   string
	LC  string
	I8  int8
	I16 int16
	I32 int32
	I64 int64
	U8  uint8
	U16 uint16
	U32 uint32
	U64 uint64
	F64 float64
	Dec decimal.Decimal
	TS  time.Time
	D   time.Time
	ID  uuid.UUID
	NS  *string
	Arr []string
	M   map[string]uint64
	B   bool
}

const typesDDL = `CREATE TABLE types (
	s String, lc LowCardinality(String),
	i8 Int8, i16 Int16, i32 Int32, i64 Int64,
	u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64,
	f64 Float64, dec Decimal(18,4), ts DateTime64(3,'UTC'), d Date, id UUID,
	ns Nullable(String), arr Array(String), m Map(String,UInt64), b Bool,
	n UInt32
) ENGINE = MergeTree ORDER BY n`

func sampleRows() []row {
	str := func(s string) *string { return &s }
	return []row{
		{
			S: "", LC: "a", I8: math.MinInt8, I16: math.MinInt16, I32: math.MinInt32, I64: math.MinInt64,
			U8: 0, U16: 0, U32: 0, U64: 0, F64: -0.5, Dec: decimal.RequireFromString("-99999999999999.9999"),
			TS: time.Date(1970, 1, 1, 0, 0, 0, 1e6, time.UTC), D: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
			ID: uuid.Nil, NS: nil, Arr: []string{}, M: map[string]uint64{}, B: false,
		},
		{
			S: "héllo\t\n'\"\\ 🦀\x00bin", LC: "b", I8: math.MaxInt8, I16: math.MaxInt16, I32: math.MaxInt32, I64: math.MaxInt64,
			U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64, F64: math.MaxFloat64,
			Dec: decimal.RequireFromString("99999999999999.9999"),
			TS:  time.Date(2106, 2, 7, 6, 28, 15, 999e6, time.UTC), D: time.Date(2149, 6, 6, 0, 0, 0, 0, time.UTC),
			ID: uuid.MustParse("0190b2a4-7c1e-7d2a-9f3b-1234567890ab"), NS: str(""), Arr: []string{"x", "", "z"},
			M: map[string]uint64{"k": math.MaxUint64, "": 0}, B: true,
		},
		{
			S: "plain", LC: "a", I8: -1, I16: 1, I32: -1, I64: 1,
			U8: 1, U16: 2, U32: 3, U64: 4, F64: 3.141592653589793, Dec: decimal.RequireFromString("0.0001"),
			TS: time.Date(2026, 11, 22, 19, 1, 2, 345e6, time.UTC), D: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC),
			ID: uuid.MustParse("ffffffff-ffff-ffff-ffff-ffffffffffff"), NS: str("value"), Arr: []string{"only"},
			M: map[string]uint64{"a": 1, "b": 2}, B: true,
		},
	}
}

func TestTypesRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, _ := testDB(t, testAddr)
	exec(t, c, typesDDL)
	want := sampleRows()
	batch, err := c.PrepareBatch(ctx, "INSERT INTO types")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range want {
		if err := batch.Append(r.S, r.LC, r.I8, r.I16, r.I32, r.I64, r.U8, r.U16, r.U32, r.U64, r.F64, r.Dec,
			r.TS, r.D, r.ID, r.NS, r.Arr, r.M, r.B, uint32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, "SELECT * EXCEPT n FROM types ORDER BY n")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.S, &r.LC, &r.I8, &r.I16, &r.I32, &r.I64, &r.U8, &r.U16, &r.U32, &r.U64, &r.F64, &r.Dec,
			&r.TS, &r.D, &r.ID, &r.NS, &r.Arr, &r.M, &r.B); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if !w.Dec.Equal(g.Dec) {
			t.Errorf("row %d: decimal %s, want %s", i, g.Dec, w.Dec)
		}
		if !w.TS.Equal(g.TS) || !w.D.Equal(g.D.UTC()) {
			t.Errorf("row %d: times %v %v, want %v %v", i, g.TS, g.D, w.TS, w.D)
		}
		w.Dec, g.Dec, w.TS, g.TS, w.D, g.D = decimal.Zero, decimal.Zero, time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(w, g) {
			t.Errorf("row %d:\n got %#v\nwant %#v", i, g, w)
		}
	}
	// The table's types are reported as declared.
	var typ string
	if err := c.QueryRow(ctx, "SELECT toTypeName(lc) FROM types LIMIT 1").Scan(&typ); err != nil || typ != "LowCardinality(String)" {
		t.Errorf("toTypeName(lc) = %q, %v", typ, err)
	}
}
