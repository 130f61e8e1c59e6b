package declare

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"gopkg.in/yaml.v3"

	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// Table kinds.
const (
	KindState  = "state"  // current state per aggregate (ReplacingMergeTree), optional history
	KindAppend = "append" // append-only rows (MergeTree)
)

// compiled is a checked projection file: everything Apply needs, with every
// expression a CEL program.
type compiled struct {
	file    string
	name    string
	state   *tableInfo // nil without a State table
	keyIdx  int
	tables  map[string]*tableInfo
	rules   map[string]*rule
	star    *rule
	initial []setter        // a new aggregate's state columns (state table "initial")
	pool    sync.Pool       // *activation
	raw     map[string]bool // catalog types whose generic map CEL reads as it is (rawOK)
}

type tableInfo struct {
	name  string
	kind  string
	cols  []*colType
	names []string
	index map[string]int
}

type rule struct {
	event   string
	raw     bool   // the payload's generic map is what CEL expects (no unions, decimals, fixed)
	at      string // file:line, for run-time errors
	ignore  bool
	when    *program
	park    *program
	reason  *program
	hasSet  bool
	set     []setter
	appends []appender
}

type setter struct {
	col int
	prg *program
}

type appender struct {
	table   *tableInfo
	forEach *program
	values  []*program // per column
}

// program is a checked expression and where it was written.
type program struct {
	cel.Program
	at  string
	src string
}

// compiler checks one spec against the catalog.
type compiler struct {
	s    *spec
	cat  *schemas.Catalog
	errs *Errors
	prov *provider
	base *cel.Env
}

func (c *compiler) errorf(at pos, format string, args ...any) {
	*c.errs = append(*c.errs, &Error{File: c.s.file, Line: at.line, Column: at.col, Msg: fmt.Sprintf(format, args...)})
}

var (
	identRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	tableRe = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)
)

// compile checks s and builds its projection; nil when s has errors (all
// of them are in errs).
func compile(s *spec, cat *schemas.Catalog, errs *Errors) *projection.Projection {
	before := len(*errs)
	prov, err := newProvider()
	if err != nil {
		*errs = append(*errs, &Error{File: s.file, Msg: err.Error()})
		return nil
	}
	c := &compiler{s: s, cat: cat, errs: errs, prov: prov}
	out := &compiled{file: s.file, name: s.name, tables: map[string]*tableInfo{}, rules: map[string]*rule{}, keyIdx: -1, raw: map[string]bool{}}
	for _, n := range cat.EventTypes() {
		out.raw[n] = rawOK(cat.Type(n).Current().Schema, map[string]bool{})
	}
	p := &projection.Projection{Name: s.name, Version: s.version, Description: s.description}
	if s.name != "" && (!identRe.MatchString(s.name) || strings.Contains(s.name, "__")) {
		c.errorf(s.namePos, "name %q: use lower case letters, digits and single underscores, starting with a letter", s.name)
	}
	if s.version == 0 {
		p.Version = 1
	}

	// Tables.
	names := map[string]bool{}
	for _, ts := range s.tables {
		t := c.table(ts, names)
		if _, dup := out.tables[ts.name]; !dup {
			out.tables[ts.name] = t
		}
		pt := projection.Table{Name: ts.name, OrderBy: ts.orderBy, Engine: ts.engine}
		for i, cs := range ts.columns {
			pt.Columns = append(pt.Columns, projection.Column{Name: cs.name, Type: t.cols[i].ch})
		}
		if t.kind == KindState {
			if out.state != nil {
				c.errorf(ts.at, "table %q: a projection has at most one state table (%q is one); split the projection", ts.name, out.state.name)
			} else {
				out.state = t
			}
			pt.State, pt.Key, pt.History = true, ts.key, ts.history
			if pt.OrderBy == "" {
				pt.OrderBy = ts.key
			} else if err := projection.StateOrderBy(pt.OrderBy, ts.key); err != nil {
				c.errorf(ts.at, "state table %q: %v", ts.name, err)
			}
			if i, ok := t.index[ts.key]; ok && out.state == t {
				out.keyIdx = i
			}
		}
		p.Tables = append(p.Tables, pt)
	}
	if len(s.tables) == 0 {
		c.errorf(s.at, "projection %q: no tables", s.name)
	}

	// Views and aggregates.
	for _, v := range s.views {
		c.view(v.at, v.name, v.sql, names, out)
		p.Views = append(p.Views, projection.View{Name: v.name, SQL: v.sql})
	}
	for _, a := range s.aggregates {
		if sql, ok := c.aggregate(a, out); ok {
			c.view(a.at, a.name, sql, names, out)
			p.Views = append(p.Views, projection.View{Name: a.name, SQL: sql})
		}
	}

	// Expression environment shared by every rule.
	opts := []cel.EnvOption{
		cel.CustomTypeProvider(prov),
		cel.Variable("envelope", types.NewObjectType(envelopeType)),
		cel.Variable("exists", types.BoolType),
		cel.OptionalTypes(), ext.Strings(), ext.Math(), ext.Lists(),
		cel.Function("toJson", cel.Overload("toJson_dyn", []*cel.Type{cel.DynType}, cel.StringType,
			cel.UnaryBinding(toJSON))),
		cel.Function("sum",
			cel.MemberOverload("list_int_sum", []*cel.Type{cel.ListType(cel.IntType)}, cel.IntType, cel.UnaryBinding(listSum)),
			cel.MemberOverload("list_double_sum", []*cel.Type{cel.ListType(cel.DoubleType)}, cel.DoubleType, cel.UnaryBinding(listSum))),
		cel.Function("put", cel.MemberOverload("map_put", []*cel.Type{
			cel.MapType(cel.TypeParamType("K"), cel.TypeParamType("V")), cel.TypeParamType("K"), cel.TypeParamType("V"),
		}, cel.MapType(cel.TypeParamType("K"), cel.TypeParamType("V")), cel.FunctionBinding(mapPut))),
	}
	if out.state != nil {
		fs := map[string]*types.Type{}
		for i, n := range out.state.names {
			fs[n] = out.state.cols[i].cel
		}
		prov.structs[stateType] = fs
		opts = append(opts, cel.Variable("state", types.NewObjectType(stateType)))
	}
	c.base, err = cel.NewEnv(opts...)
	if err != nil {
		c.errorf(s.at, "expression environment: %v", err)
		return nil
	}

	// A new aggregate's row.
	for _, ts := range s.tables {
		if len(ts.initial) == 0 {
			continue
		}
		t := out.tables[ts.name]
		if t == nil || t != out.state {
			c.errorf(ts.initialPos, "table %q: initial is for the state table", ts.name)
			continue
		}
		for _, a := range ts.initial {
			i, ok := t.index[a.column]
			switch {
			case !ok:
				c.errorf(a.at, "initial %q: the state table %s has no such column%s", a.column, t.name, suggest(a.column, t.names))
			case i == out.keyIdx:
				c.errorf(a.at, "initial %q: the key is the event's aggregate ID and cannot be set", a.column)
			default:
				if prg := c.check(c.base, a.expr, t.cols[i].cel, "initial "+a.column); prg != nil {
					out.initial = append(out.initial, setter{col: i, prg: prg})
				}
			}
		}
	}

	// Rules.
	var events []string
	for _, rs := range s.rules {
		r := c.rule(rs, out)
		if r == nil {
			continue
		}
		if rs.event == "*" {
			out.star = r
			continue
		}
		out.rules[rs.event] = r
		if !r.ignore {
			events = append(events, rs.event)
		}
	}
	if len(s.rules) == 0 {
		c.errorf(s.at, "projection %q: no rules under \"on\"", s.name)
	}
	if out.star == nil {
		slices.Sort(events)
		p.Events = events
	}

	// Topics: given, or those of the event types.
	p.Topics = s.topics
	if len(p.Topics) == 0 {
		if out.star != nil {
			c.errorf(s.at, "projection %q: a \"*\" rule needs topics", s.name)
		}
		seen := map[string]bool{}
		for _, e := range events {
			t := cat.Topic(e)
			if t == "" {
				c.errorf(s.at, "projection %q: the catalog puts %s on no topic; list topics", s.name, e)
				continue
			}
			if !seen[t] {
				seen[t] = true
				p.Topics = append(p.Topics, t)
			}
		}
		slices.Sort(p.Topics)
	}

	if len(*errs) > before {
		return nil
	}
	out.pool.New = func() any {
		a := &activation{envelope: make(map[string]any, 12)}
		if out.state != nil {
			a.state = make(map[string]any, len(out.state.names))
		}
		return a
	}
	p.Apply = out.apply
	if err := p.Validate(); err != nil {
		c.errorf(s.at, "%v", err)
		return nil
	}
	return p
}

func (c *compiler) table(ts *tableSpec, names map[string]bool) *tableInfo {
	if !identRe.MatchString(ts.name) || strings.Contains(ts.name, "__") {
		c.errorf(ts.namePos, "table name %q: use lower case letters, digits and single underscores, starting with a letter", ts.name)
	}
	if names[ts.name] {
		c.errorf(ts.namePos, "table %q: name used twice", ts.name)
	}
	names[ts.name] = true
	kind := ts.kind
	if kind == "" {
		kind = KindAppend
	}
	if kind != KindState && kind != KindAppend {
		c.errorf(ts.at, "table %q: kind %q: want state or append (aggregates are under \"aggregates\")", ts.name, ts.kind)
	}
	t := &tableInfo{name: ts.name, kind: kind, index: map[string]int{}}
	if len(ts.columns) == 0 {
		c.errorf(ts.at, "table %q: no columns", ts.name)
	}
	for i, cs := range ts.columns {
		if !identRe.MatchString(cs.name) {
			c.errorf(cs.at, "table %q column %q: use lower case letters, digits and underscores, starting with a letter (names starting with _ are Reel's)", ts.name, cs.name)
		}
		if _, dup := t.index[cs.name]; dup {
			c.errorf(cs.at, "table %q: column %q declared twice", ts.name, cs.name)
		}
		t.index[cs.name] = i
		ct, err := parseColType(cs.typ)
		if err != nil {
			c.errorf(cs.typePos, "table %q column %q: %v", ts.name, cs.name, err)
			ct = &colType{ch: cs.typ, cel: types.DynType}
		}
		t.cols = append(t.cols, ct)
		t.names = append(t.names, cs.name)
	}
	switch kind {
	case KindState:
		if ts.key == "" {
			c.errorf(ts.at, "state table %q: no key (the column holding the aggregate ID)", ts.name)
		} else if i, has := t.index[ts.key]; !has {
			c.errorf(ts.keyPos, "state table %q: key %q is not one of its columns", ts.name, ts.key)
		} else if t.cols[i].cel != types.StringType {
			c.errorf(ts.keyPos, "state table %q: key %q must be a String column (the aggregate ID), is %s", ts.name, ts.key, t.cols[i].ch)
		}
		if ts.engine != "" {
			c.errorf(ts.at, "state table %q: engine is fixed (ReplacingMergeTree)", ts.name)
		}
	case KindAppend:
		if ts.key != "" || ts.history {
			c.errorf(ts.at, "append table %q: key and history are for state tables", ts.name)
		}
		if ts.orderBy == "" {
			c.errorf(ts.at, "append table %q: no orderBy", ts.name)
		}
		if ts.engine != "" && ts.engine != "MergeTree" {
			c.errorf(ts.at, "append table %q: engine %q: append tables are MergeTree (a merging engine would fold the _offset column that positions are read from; sum with an aggregate instead)", ts.name, ts.engine)
		}
	}
	// Even with errors the table types its rules' expressions, so that
	// one check reports those too.
	return t
}

func (c *compiler) view(at pos, name, sql string, names map[string]bool, out *compiled) {
	if !identRe.MatchString(name) {
		c.errorf(at, "view %q: use lower case letters, digits and underscores, starting with a letter", name)
	}
	if names[name] {
		c.errorf(at, "view %q: name used twice (tables and views share names)", name)
	}
	names[name] = true
	if strings.TrimSpace(sql) == "" {
		c.errorf(at, "view %q: no sql", name)
	}
	for _, m := range tableRe.FindAllStringSubmatch(sql, -1) {
		if _, ok := out.tables[m[1]]; !ok && !c.declared(m[1]) {
			c.errorf(at, "view %q: {{%s}} is not a table of this projection", name, m[1])
		}
	}
}

func (c *compiler) declared(table string) bool {
	for _, t := range c.s.tables {
		if t.name == table {
			return true // declared, but with errors of its own
		}
	}
	return false
}

// aggregate is a view that groups an append table: its rows are inserted
// exactly once, so the sums never double count, on replay or rebuild.
func (c *compiler) aggregate(a *aggSpec, out *compiled) (string, bool) {
	ok := true
	t := out.tables[a.from]
	switch {
	case a.from == "":
		c.errorf(a.at, "aggregate %q: no from (the append table it sums)", a.name)
		ok = false
	case t == nil:
		if !c.declared(a.from) {
			c.errorf(a.fromPos, "aggregate %q: from %q is not a table of this projection", a.name, a.from)
		}
		ok = false
	case t.kind != KindAppend:
		c.errorf(a.fromPos, "aggregate %q: from %q is a %s table; aggregates sum append tables (rows of a state table are replaced)", a.name, a.from, t.kind)
		ok = false
	}
	if len(a.measures) == 0 {
		c.errorf(a.at, "aggregate %q: no measures", a.name)
		ok = false
	}
	if t != nil {
		for _, g := range a.groupBy {
			if _, has := t.index[g]; !has {
				c.errorf(a.groupByPos, "aggregate %q: groupBy %q is not a column of %s", a.name, g, a.from)
				ok = false
			}
		}
	}
	if !ok {
		return "", false
	}
	sel := slices.Clone(a.groupBy)
	for _, m := range a.measures {
		sel = append(sel, m.value+" AS "+m.key)
	}
	sql := "SELECT " + strings.Join(sel, ", ") + " FROM {{" + a.from + "}}"
	if len(a.groupBy) > 0 {
		sql += " GROUP BY " + strings.Join(a.groupBy, ", ")
	}
	return sql, true
}

func (c *compiler) rule(rs *ruleSpec, out *compiled) *rule {
	r := &rule{event: rs.event, at: fmt.Sprintf("%s:%d", c.s.file, rs.at.line), ignore: rs.ignore}
	var eventType *types.Type
	if rs.event == "*" {
		eventType = types.NewMapType(types.StringType, types.DynType)
	} else {
		et := c.cat.Type(rs.event)
		if et == nil {
			c.errorf(rs.at, "on %s: the catalog (%s) has no event type %q%s", rs.event, c.cat.Source(), rs.event, suggest(rs.event, c.cat.EventTypes()))
			return nil
		}
		eventType = c.prov.avroType(et.Current().Schema)
		r.raw = rawOK(et.Current().Schema, map[string]bool{})
	}
	if r.ignore {
		return r
	}
	env, err := c.base.Extend(cel.Variable("event", eventType))
	if err != nil {
		c.errorf(rs.at, "on %s: %v", rs.event, err)
		return nil
	}
	r.when = c.check(env, rs.when, types.BoolType, "when")
	r.park = c.check(env, rs.park, types.BoolType, "park")
	r.reason = c.check(env, rs.reason, types.StringType, "reason")
	if rs.reason != nil && rs.park == nil {
		c.errorf(at(rs.reason.node), "on %s: reason without park", rs.event)
	}
	if rs.hasSet {
		r.hasSet = true
		if out.state == nil {
			c.errorf(rs.setPos, "on %s: set needs a state table (kind: state)", rs.event)
		} else {
			for _, a := range rs.set {
				i, ok := out.state.index[a.column]
				switch {
				case !ok:
					c.errorf(a.at, "on %s: set %q: the state table %s has no such column%s", rs.event, a.column, out.state.name, suggest(a.column, out.state.names))
				case i == out.keyIdx:
					c.errorf(a.at, "on %s: set %q: the key is the event's aggregate ID and cannot be set", rs.event, a.column)
				default:
					if prg := c.check(env, a.expr, out.state.cols[i].cel, "set "+a.column); prg != nil {
						r.set = append(r.set, setter{col: i, prg: prg})
					}
				}
			}
		}
	}
	if !rs.hasSet && len(rs.appends) == 0 && rs.park == nil {
		c.errorf(rs.at, "on %s: the rule does nothing (give set, append or park, or write \"ignore\")", rs.event)
	}
	for _, as := range rs.appends {
		t := out.tables[as.table]
		if t == nil {
			if !c.declared(as.table) {
				c.errorf(as.tablePos, "on %s: append to %q: not a table of this projection", rs.event, as.table)
			}
			continue
		}
		if t.kind != KindAppend {
			c.errorf(as.tablePos, "on %s: append to %q: it is a %s table (use set)", rs.event, as.table, t.kind)
			continue
		}
		ap := appender{table: t, values: make([]*program, len(t.cols))}
		venv := env
		if as.forEach != nil {
			ast, iss := env.Compile(as.forEach.src)
			if iss.Err() != nil {
				c.celErrors(as.forEach, "forEach", iss)
				continue
			}
			if ast.OutputType().Kind() != types.ListKind && ast.OutputType().Kind() != types.DynKind {
				c.errorf(c.exprPos(as.forEach, 1, 0), "forEach: got %s, want a list", ast.OutputType())
				continue
			}
			elem := types.DynType
			if ast.OutputType().Kind() == types.ListKind {
				elem = ast.OutputType().Parameters()[0]
			}
			ap.forEach = c.program(env, ast, as.forEach)
			if venv, err = env.Extend(cel.Variable("item", elem), cel.Variable("index", types.IntType)); err != nil {
				c.errorf(as.at, "forEach: %v", err)
				continue
			}
		}
		for _, v := range as.values {
			i, ok := t.index[v.column]
			if !ok {
				c.errorf(v.at, "on %s: append to %s: no column %q%s", rs.event, t.name, v.column, suggest(v.column, t.names))
				continue
			}
			ap.values[i] = c.check(venv, v.expr, t.cols[i].cel, "values."+v.column)
		}
		for i, n := range t.names {
			if ap.values[i] == nil && !slices.ContainsFunc(as.values, func(a *assign) bool { return a.column == n }) {
				c.errorf(as.at, "on %s: append to %s: no value for column %q", rs.event, t.name, n)
			}
		}
		r.appends = append(r.appends, ap)
	}
	return r
}

// check compiles and type-checks e; want is the type its result must
// have. nil when e is nil or wrong (errors reported).
func (c *compiler) check(env *cel.Env, e *exprSpec, want *types.Type, what string) *program {
	if e == nil {
		return nil
	}
	ast, iss := env.Compile(e.src)
	if iss.Err() != nil {
		c.celErrors(e, what, iss)
		return nil
	}
	if !assignable(want, ast.OutputType()) {
		c.errorf(c.exprPos(e, 1, 0), "%s: the expression is %s, want %s", what, typeName(ast.OutputType()), typeName(want))
		return nil
	}
	return c.program(env, ast, e)
}

func (c *compiler) program(env *cel.Env, ast *cel.Ast, e *exprSpec) *program {
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		c.errorf(c.exprPos(e, 1, 0), "%v", err)
		return nil
	}
	return &program{Program: prg, at: fmt.Sprintf("%s:%d", c.s.file, e.node.Line), src: e.src}
}

func (c *compiler) celErrors(e *exprSpec, what string, iss *cel.Issues) {
	for _, ce := range iss.Errors() {
		c.errorf(c.exprPos(e, ce.Location.Line(), ce.Location.Column()), "%s: %s", what, ce.Message)
	}
}

// exprPos maps a position in an expression (line 1-based, column
// 0-based, as CEL reports) to the file.
func (c *compiler) exprPos(e *exprSpec, line, col int) pos {
	n := e.node
	if line < 1 {
		line = 1
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle: // content starts below the indicator
		l := n.Line + line
		if n.Line < len(c.s.lines) { // the block's indentation is its first line's
			text := c.s.lines[n.Line]
			return pos{l, len(text) - len(strings.TrimLeft(text, " ")) + col + 1}
		}
		return pos{l, col + 1}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 1 {
			return pos{n.Line, n.Column + 1 + col}
		}
	default:
		if line == 1 {
			return pos{n.Line, n.Column + col}
		}
	}
	return pos{n.Line + line - 1, col + 1}
}

func typeName(t *types.Type) string {
	if t.Kind() == types.StructKind && t.TypeName() == stateType {
		return "the state row"
	}
	return t.String()
}

// suggest names the closest candidate, if one is close.
func suggest(name string, have []string) string {
	best, bestD := "", 4
	for _, h := range have {
		if d := distance(strings.ToLower(name), strings.ToLower(h)); d < bestD {
			best, bestD = h, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// toJSON is the toJson(x) function: the value as JSON (timestamps in RFC
// 3339, bytes in base64).
func toJSON(v ref.Val) ref.Val {
	b, err := json.Marshal(jsonable(v.Value()))
	if err != nil {
		return types.NewErr("toJson: %v", err)
	}
	return types.String(b)
}

func jsonable(v any) any {
	switch x := v.(type) {
	case ref.Val:
		return jsonable(x.Value())
	case map[ref.Val]ref.Val:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k.Value())] = jsonable(e)
		}
		return m
	case []ref.Val:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = jsonable(e)
		}
		return l
	}
	return v
}

// mapPut is m.put(k, v): a copy of m with k set to v (maps are values).
func mapPut(args ...ref.Val) ref.Val {
	m, ok := args[0].(traits.Mapper)
	if !ok {
		return types.NewErr("put: %s is not a map", args[0].Type().TypeName())
	}
	out := make(map[ref.Val]ref.Val, int(m.Size().(types.Int))+1)
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		out[k] = m.Get(k)
	}
	out[args[1]] = args[2]
	return types.NewRefValMap(types.DefaultTypeAdapter, out)
}

// listSum is l.sum(): the sum of a list of ints or doubles (0 when empty).
func listSum(v ref.Val) ref.Val {
	l, ok := v.(traits.Lister)
	if !ok {
		return types.NewErr("sum: %s is not a list", v.Type().TypeName())
	}
	var acc ref.Val = types.Int(0)
	first := true
	for it := l.Iterator(); it.HasNext() == types.True; {
		e := it.Next()
		if first {
			acc, first = e, false
			continue
		}
		a, ok := acc.(traits.Adder)
		if !ok {
			return types.NewErr("sum: cannot add %s", acc.Type().TypeName())
		}
		acc = a.Add(e)
		if types.IsError(acc) {
			return acc
		}
	}
	return acc
}
