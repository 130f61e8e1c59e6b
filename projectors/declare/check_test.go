package declare_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/reel-dev/reel/projectors/declare"
)

const broken = `name: bad
tables:
  - name: orders_current
    kind: state
    key: order_id
    columns:
      order_id: String
      status: String
      total: UInt32
      when_at: DateTime64(3)
      weird: Blob
  - name: lines
    kind: append
    orderBy: x
    columns:
      x: String
      y: Int64
  - name: lines
    kind: append
    orderBy: x
    columns: {x: String}
  - name: second
    kind: state
    columns: {a: String}
on:
  shop.OrderPlacd:
    set: {status: '"x"'}
  shop.OrderPlaced:
    set:
      status: event.customer_idd
      total: event.currency
      order_id: '"x"'
      nope: "1"
      when_at: |
        event.placed_at +
          event.foo
    append:
      table: lines
      values:
        x: event.customer_id
  shop.OrderItemAdded:
    colour: red
`

// Every mistake is reported, each at its line and column, in file order.
func TestCheckReportsEveryErrorWithPosition(t *testing.T) {
	_, err := declare.Parse("bad.yaml", []byte(broken), demoCatalog(t))
	var es declare.Errors
	if !errors.As(err, &es) {
		t.Fatalf("want declare.Errors, got %v", err)
	}
	want := []string{
		`bad.yaml:11:14: table "orders_current" column "weird": unsupported ClickHouse type "Blob"`,
		`bad.yaml:18:11: table "lines": name used twice`,
		`bad.yaml:22:5: state table "second": no key`,
		`bad.yaml:22:5: table "second": a projection has at most one state table`,
		`bad.yaml:26:3: on shop.OrderPlacd: the catalog (embedded demo catalog) has no event type "shop.OrderPlacd" (did you mean "shop.OrderPlaced"?)`,
		`bad.yaml:30:20: set status: undefined field 'customer_idd'`,
		`bad.yaml:31:14: set total: the expression is string, want int`,
		`bad.yaml:32:7: on shop.OrderPlaced: set "order_id": the key is the event's aggregate ID`,
		`bad.yaml:33:7: on shop.OrderPlaced: set "nope": the state table orders_current has no such column`,
		`bad.yaml:36:16: set when_at: undefined field 'foo'`,
		`bad.yaml:38:7: on shop.OrderPlaced: append to lines: no value for column "y"`,
		`bad.yaml:41:3: on shop.OrderItemAdded: the rule does nothing`,
		`bad.yaml:42:5: on shop.OrderItemAdded: unknown key "colour"`,
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
}

func TestCheckResultTypesAndNames(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"when must be bool": {`name: p
tables: [{name: t, kind: state, key: id, columns: {id: String, n: Int64}}]
on:
  shop.OrderPlaced: {when: event.item_count, set: {n: "1"}}
`, `p.yaml:4:28: when: the expression is int, want bool`},
		"list into an array column": {`name: p
tables: [{name: t, kind: state, key: id, columns: {id: String, a: Array(String)}}]
on:
  shop.OrderPlaced: {set: {a: "[event.item_count]"}}
`, `p.yaml:4:32: set a: the expression is list(int), want list(string)`},
		"bad projection name": {`name: Bad-Name
tables: [{name: t, kind: append, orderBy: id, columns: {id: String}}]
on:
  shop.OrderPlaced: {append: {table: t, values: {id: envelope.id}}}
`, `p.yaml:1:7: name "Bad-Name"`},
		"view of an unknown table": {`name: p
tables: [{name: t, kind: append, orderBy: id, columns: {id: String}}]
views: [{name: v, sql: "SELECT * FROM {{nope}}"}]
on:
  shop.OrderPlaced: {append: {table: t, values: {id: envelope.id}}}
`, `p.yaml:3:9: view "v": {{nope}} is not a table of this projection`},
		"aggregate over a state table": {`name: p
tables: [{name: t, kind: state, key: id, columns: {id: String, n: Int64}}]
aggregates: [{name: v, from: t, groupBy: [id], measures: {n: sum(n)}}]
on:
  shop.OrderPlaced: {set: {n: "1"}}
`, `p.yaml:3:30: aggregate "v": from "t" is a state table`},
		"state table sorted by more than its key": {`name: p
tables: [{name: t, kind: state, key: id, orderBy: [n, id], columns: {id: String, n: Int64}}]
on:
  shop.OrderPlaced: {set: {n: "1"}}
`, `p.yaml:2:10: state table "t": OrderBy "n, id": a State table is sorted by its key "id" alone`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := declare.Parse("p.yaml", []byte(c.yaml), demoCatalog(t))
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %s…", err, c.want)
			}
		})
	}
}

// initial fills a new aggregate's row; it is checked like set.
func TestInitial(t *testing.T) {
	_, err := declare.Parse("p.yaml", []byte(`name: p
tables:
  - name: t
    kind: state
    key: id
    columns: {id: String, s: String}
    initial: {s: "1", nope: '"x"', id: '"y"'}
on:
  shop.OrderPlaced: {set: {}}
`), demoCatalog(t))
	want := "p.yaml:7:19: initial s: the expression is int, want string\np.yaml:7:23: initial \"nope\": the state table t has no such column\np.yaml:7:36: initial \"id\": the key is the event's aggregate ID and cannot be set"
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}
