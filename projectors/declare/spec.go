package declare

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// The parsed form of one projection file, every part with its position.

type pos struct{ line, col int }

func at(n *yaml.Node) pos { return pos{n.Line, n.Column} }

type spec struct {
	file        string
	lines       []string // the file's lines, to place errors in block scalars
	at          pos
	name        string
	namePos     pos
	version     int
	description string
	topics      []string
	topicsPos   pos
	tables      []*tableSpec
	views       []*viewSpec
	aggregates  []*aggSpec
	rules       []*ruleSpec
}

type tableSpec struct {
	at, namePos, keyPos pos
	name, kind, key     string
	orderBy, engine     string
	history             bool
	columns             []*colSpec
	initial             []*assign // state tables: a new aggregate's row before its first event
	initialPos          pos
}

type colSpec struct {
	at, typePos pos
	name, typ   string
}

type viewSpec struct {
	at   pos
	name string
	sql  string
}

type aggSpec struct {
	at, fromPos pos
	name, from  string
	groupBy     []string
	groupByPos  pos
	measures    []kv
}

type kv struct {
	at         pos
	key, value string
}

// ruleSpec is what one event type does.
type ruleSpec struct {
	at      pos
	event   string // catalog type, or "*"
	ignore  bool
	when    *exprSpec
	park    *exprSpec
	reason  *exprSpec
	set     []*assign
	setPos  pos
	hasSet  bool
	appends []*appendSpec
}

type appendSpec struct {
	at       pos
	table    string
	tablePos pos
	forEach  *exprSpec
	values   []*assign
}

type assign struct {
	at     pos // the column name
	column string
	expr   *exprSpec
}

// exprSpec is a CEL expression and the YAML scalar it was written in.
type exprSpec struct {
	src  string
	node *yaml.Node
}

// parser turns YAML nodes into a spec, collecting every error.
type parser struct {
	file string
	errs *Errors
}

func (p *parser) errorf(at pos, format string, args ...any) {
	*p.errs = append(*p.errs, &Error{File: p.file, Line: at.line, Column: at.col, Msg: fmt.Sprintf(format, args...)})
}

// pair is one key: value of a YAML mapping.
type pair struct{ k, v *yaml.Node }

// mapping returns n's pairs; keys not in allowed (when given) and
// duplicates are errors.
func (p *parser) mapping(n *yaml.Node, what string, allowed ...string) []pair {
	if n.Kind != yaml.MappingNode {
		p.errorf(at(n), "%s: want a mapping", what)
		return nil
	}
	seen := map[string]bool{}
	var out []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.errorf(at(k), "%s: %q given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		if len(allowed) > 0 && !slices.Contains(allowed, k.Value) {
			p.errorf(at(k), "%s: unknown key %q (allowed: %s)", what, k.Value, strings.Join(allowed, ", "))
			continue
		}
		out = append(out, pair{k, v})
	}
	return out
}

func (p *parser) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode {
		p.errorf(at(n), "%s: want a string", what)
		return ""
	}
	return n.Value
}

func (p *parser) strs(n *yaml.Node, what string) []string {
	if n.Kind == yaml.ScalarNode { // "a, b" is a list too
		var out []string
		for _, s := range strings.Split(n.Value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(at(n), "%s: want a list", what)
		return nil
	}
	var out []string
	for _, e := range n.Content {
		out = append(out, p.str(e, what))
	}
	return out
}

func (p *parser) decode(n *yaml.Node, what string, v any) {
	if err := n.Decode(v); err != nil {
		p.errorf(at(n), "%s: %v", what, err)
	}
}

func (p *parser) expr(n *yaml.Node, what string) *exprSpec {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias // errors point at the anchored expression
	}
	if n.Kind != yaml.ScalarNode || strings.TrimSpace(n.Value) == "" {
		p.errorf(at(n), "%s: want a CEL expression", what)
		return nil
	}
	return &exprSpec{src: n.Value, node: n}
}

// parse reads one projection document.
func parse(file string, data []byte, errs *Errors) *spec {
	p := &parser{file: file, errs: errs}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 0
		fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &line)
		p.errorf(pos{line, 0}, "%v", err)
		return nil
	}
	if len(doc.Content) == 0 {
		p.errorf(pos{1, 1}, "empty file")
		return nil
	}
	root := doc.Content[0]
	s := &spec{file: file, lines: strings.Split(string(data), "\n"), at: at(root)}
	for _, kv := range p.mapping(root, "projection", "name", "version", "description", "topics", "tables", "views", "aggregates", "on") {
		switch kv.k.Value {
		case "name":
			s.name, s.namePos = p.str(kv.v, "name"), at(kv.v)
		case "version":
			p.decode(kv.v, "version", &s.version)
		case "description":
			s.description = p.str(kv.v, "description")
		case "topics":
			s.topics, s.topicsPos = p.strs(kv.v, "topics"), at(kv.v)
		case "tables":
			for _, n := range p.seq(kv.v, "tables") {
				s.tables = append(s.tables, p.table(n))
			}
		case "views":
			for _, n := range p.seq(kv.v, "views") {
				v := &viewSpec{at: at(n)}
				for _, f := range p.mapping(n, "view", "name", "sql") {
					switch f.k.Value {
					case "name":
						v.name = p.str(f.v, "view name")
					case "sql":
						v.sql = p.str(f.v, "view sql")
					}
				}
				s.views = append(s.views, v)
			}
		case "aggregates":
			for _, n := range p.seq(kv.v, "aggregates") {
				s.aggregates = append(s.aggregates, p.aggregate(n))
			}
		case "on":
			for _, r := range p.mapping(kv.v, "on") {
				s.rules = append(s.rules, p.rule(r.k, r.v))
			}
		}
	}
	if s.name == "" {
		p.errorf(s.at, "projection: no name")
	}
	return s
}

func (p *parser) seq(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		p.errorf(at(n), "%s: want a list", what)
		return nil
	}
	return n.Content
}

func (p *parser) table(n *yaml.Node) *tableSpec {
	t := &tableSpec{at: at(n)}
	for _, f := range p.mapping(n, "table", "name", "kind", "key", "history", "orderBy", "engine", "columns", "initial") {
		switch f.k.Value {
		case "name":
			t.name, t.namePos = p.str(f.v, "table name"), at(f.v)
		case "kind":
			t.kind = p.str(f.v, "table kind")
		case "key":
			t.key, t.keyPos = p.str(f.v, "table key"), at(f.v)
		case "history":
			p.decode(f.v, "history", &t.history)
		case "orderBy":
			t.orderBy = strings.Join(p.strs(f.v, "orderBy"), ", ")
		case "engine":
			t.engine = p.str(f.v, "engine")
		case "initial":
			t.initial, t.initialPos = p.assigns(f.v, "initial"), at(f.k)
		case "columns":
			// Either a list of {name, type} or a mapping name: type.
			if f.v.Kind == yaml.MappingNode {
				for _, c := range p.mapping(f.v, "columns") {
					t.columns = append(t.columns, &colSpec{at: at(c.k), typePos: at(c.v), name: c.k.Value, typ: p.str(c.v, "column type")})
				}
				continue
			}
			for _, cn := range p.seq(f.v, "columns") {
				c := &colSpec{at: at(cn), typePos: at(cn)}
				for _, cf := range p.mapping(cn, "column", "name", "type") {
					switch cf.k.Value {
					case "name":
						c.name = p.str(cf.v, "column name")
					case "type":
						c.typ, c.typePos = p.str(cf.v, "column type"), at(cf.v)
					}
				}
				t.columns = append(t.columns, c)
			}
		}
	}
	if t.namePos == (pos{}) {
		t.namePos = t.at
	}
	return t
}

func (p *parser) aggregate(n *yaml.Node) *aggSpec {
	a := &aggSpec{at: at(n)}
	for _, f := range p.mapping(n, "aggregate", "name", "from", "groupBy", "measures") {
		switch f.k.Value {
		case "name":
			a.name = p.str(f.v, "aggregate name")
		case "from":
			a.from, a.fromPos = p.str(f.v, "aggregate from"), at(f.v)
		case "groupBy":
			a.groupBy, a.groupByPos = p.strs(f.v, "groupBy"), at(f.v)
		case "measures":
			for _, m := range p.mapping(f.v, "measures") {
				a.measures = append(a.measures, kv{at: at(m.k), key: m.k.Value, value: p.str(m.v, "measure")})
			}
		}
	}
	return a
}

func (p *parser) rule(k, v *yaml.Node) *ruleSpec {
	r := &ruleSpec{at: at(k), event: k.Value}
	if v.Kind == yaml.ScalarNode {
		if v.Value != "ignore" {
			p.errorf(at(v), "on %s: want a rule (set, append, when, park) or \"ignore\", got %q", k.Value, v.Value)
		}
		r.ignore = true
		return r
	}
	for _, f := range p.mapping(v, "on "+k.Value, "when", "park", "reason", "set", "append") {
		switch f.k.Value {
		case "when":
			r.when = p.expr(f.v, "when")
		case "park":
			r.park = p.expr(f.v, "park")
		case "reason":
			r.reason = p.expr(f.v, "reason")
		case "set":
			r.hasSet, r.setPos = true, at(f.k)
			if f.v.Kind == yaml.MappingNode && len(f.v.Content) == 0 {
				continue
			}
			r.set = p.assigns(f.v, "set")
		case "append":
			nodes := []*yaml.Node{f.v}
			if f.v.Kind == yaml.SequenceNode {
				nodes = f.v.Content
			}
			for _, an := range nodes {
				a := &appendSpec{at: at(an)}
				for _, af := range p.mapping(an, "append", "table", "forEach", "values") {
					switch af.k.Value {
					case "table":
						a.table, a.tablePos = p.str(af.v, "append table"), at(af.v)
					case "forEach":
						a.forEach = p.expr(af.v, "forEach")
					case "values":
						a.values = p.assigns(af.v, "values")
					}
				}
				if a.tablePos == (pos{}) {
					a.tablePos = a.at
				}
				r.appends = append(r.appends, a)
			}
		}
	}
	return r
}

func (p *parser) assigns(n *yaml.Node, what string) []*assign {
	var out []*assign
	for _, f := range p.mapping(n, what) {
		if e := p.expr(f.v, what+"."+f.k.Value); e != nil {
			out = append(out, &assign{at: at(f.k), column: f.k.Value, expr: e})
		}
	}
	return out
}
