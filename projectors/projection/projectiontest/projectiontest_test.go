package projectiontest_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/projection/projectiontest"
	"github.com/reel-dev/reel/schemas"
)

// counter counts events per aggregate (State table counts) and logs them;
// "fail" events emit, then fail; "notify" events register a side effect.
func counter() *projection.Projection {
	return &projection.Projection{
		Name: "counter", Topics: []string{"t"}, Events: []string{"add", "fail", "notify"},
		Tables: []projection.Table{
			{Name: "counts", Columns: []projection.Column{{Name: "id", Type: "String"}, {Name: "n", Type: "UInt64"}}, OrderBy: "id", State: true, Key: "id"},
			{Name: "log", Columns: []projection.Column{{Name: "id", Type: "String"}, {Name: "type", Type: "String"}}, OrderBy: "id"},
		},
		Apply: func(ctx context.Context, tx projection.Tx, ev schemas.Event) error {
			n := uint64(0)
			if row, ok, err := tx.State(); err != nil {
				return err
			} else if ok {
				n = row[1].(uint64)
			}
			if err := tx.Emit("counts", tx.AggregateID(), n+1); err != nil {
				return err
			}
			if err := tx.Emit("log", tx.AggregateID(), ev.Type); err != nil {
				return err
			}
			switch ev.Type {
			case "fail":
				return errors.New("boom")
			case "notify":
				tx.SideEffect(func(context.Context) error { return nil })
			}
			return nil
		},
	}
}

func TestTxFoldsLikeTheRuntime(t *testing.T) {
	ctx := context.Background()
	tx := projectiontest.New(counter())
	tx.SetState("b", "b", uint64(10))
	for _, ev := range []schemas.Event{
		{Type: "add", AggregateID: "a"},
		{Type: "other", AggregateID: "a"}, // not wanted: skipped
		{Type: "add", AggregateID: "b"},
		{Type: "notify", AggregateID: "a"},
	} {
		if err := tx.Apply(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Apply(ctx, schemas.Event{Type: "fail", AggregateID: "a"}); err == nil || err.Error() != "boom" {
		t.Fatalf("Apply of a failing event: %v", err)
	}
	if row, ok := tx.StateOf("a"); !ok || !reflect.DeepEqual(row, []any{"a", uint64(2)}) {
		t.Errorf("state of a = %v %v, want [a 2] (the failed event's Emit dropped)", row, ok)
	}
	if row, _ := tx.StateOf("b"); !reflect.DeepEqual(row, []any{"b", uint64(11)}) {
		t.Errorf("state of b = %v, want [b 11] (from SetState)", row)
	}
	if got := tx.RowsOf("log"); !reflect.DeepEqual(got, [][]any{{"a", "add"}, {"b", "add"}, {"a", "notify"}}) {
		t.Errorf("log rows %v", got)
	}
	if last := tx.Rows[len(tx.Rows)-1]; last.Event.Offset != 3 {
		t.Errorf("last row from offset %d, want 3 (the fourth event)", last.Event.Offset)
	}
	if len(tx.Effects) != 1 {
		t.Errorf("%d side effects, want 1", len(tx.Effects))
	}

	replay := projectiontest.New(counter())
	replay.Replay = true
	if err := replay.Apply(ctx, schemas.Event{Type: "notify", AggregateID: "a"}); err != nil {
		t.Fatal(err)
	}
	if len(replay.Effects) != 0 || !replay.Replaying() {
		t.Errorf("a replay registered %d side effects", len(replay.Effects))
	}
}

func TestTxChecksEmits(t *testing.T) {
	tx := projectiontest.New(counter())
	tx.Aggregate = "a"
	for _, c := range []struct {
		table  string
		values []any
		want   string
	}{
		{"nope", []any{"a"}, `has no table "nope"`},
		{"log", []any{"a"}, "1 values for 2 columns"},
		{"counts", []any{"b", uint64(1)}, `key column "id" is b, but the event's aggregate is "a"`},
	} {
		if err := tx.Emit(c.table, c.values...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Emit(%s, %v) = %v, want %q", c.table, c.values, err, c.want)
		}
	}
	if len(tx.Rows) != 0 {
		t.Errorf("refused rows recorded: %v", tx.Rows)
	}
	noState := counter()
	noState.Tables = noState.Tables[1:]
	if _, _, err := projectiontest.New(noState).State(); err == nil {
		t.Error("State of a projection without a State table: no error")
	}
}
