package declare_test

import (
	"testing"

	"github.com/reel-dev/reel/projectors/declare"
)

// The functions docs/projections.md promises type-check.
func TestDocumentedFunctionsCheck(t *testing.T) {
	exprs := map[string]string{
		"n":  `[3, 1, 2].sort()[0] + lists.range(3).size() + [1, 1].distinct().size() + [[1], [2]].flatten().size() + [1, 2, 3].slice(0, 1)[0]`,
		"s":  `"A,b".lowerAscii().split(",")[0] + "x".replace("x", "y") + "%d".format([1]) + toJson({"a": 1})`,
		"d":  `math.greatest(1.0, 2.0) + math.round(1.4) + [1.5, 2.5].sum() + double([1, 2].sum())`,
		"ts": `event.placed_at - duration("1h")`,
		"m":  `{"a": 1}.put("b", 2)`,
		"b":  `event.placed_at.getFullYear() > 2000 && int(event.placed_at) > 0 && has(event.channel) && exists && {"a": 1}[?"a"].orValue(0) == 1 && envelope.offset >= 0 && event.currency.startsWith("E") && event.currency.matches("^[A-Z]{3}$")`,
	}
	yaml := "name: p\ntables:\n  - name: t\n    kind: state\n    key: id\n    columns: {id: String, n: Int64, s: String, d: Float64, ts: DateTime64(3), m: 'Map(String, Int64)', b: Bool}\non:\n  shop.OrderPlaced:\n    set:\n"
	for col, e := range exprs {
		yaml += "      " + col + ": '" + e + "'\n"
	}
	if _, err := declare.Parse("p.yaml", []byte(yaml), demoCatalog(t)); err != nil {
		t.Fatal(err)
	}
}
