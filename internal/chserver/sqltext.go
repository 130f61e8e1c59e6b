package chserver

import (
	"strings"
	"unicode"
)

// insertParts splits an INSERT statement that expects data into what chDB's
// streaming insert wants: the statement without its FORMAT clause, the input
// format, and any data already inline after it. ok is false for anything
// that is not such an INSERT (INSERT … SELECT, other statements), which then
// runs as plain query text.
//
//	INSERT INTO t (a, b) FORMAT Native   → "INSERT INTO t (a, b)", "Native", ""
//	INSERT INTO t VALUES (1), (2)        → "INSERT INTO t", "Values", "(1), (2)"
func insertParts(q string) (stmt, format, inline string, ok bool) {
	toks := scan(q, 64)
	if len(toks) == 0 || !toks[0].is("INSERT") {
		return "", "", "", false
	}
	for i, t := range toks {
		switch {
		case t.is("SELECT"), t.is("WITH"):
			return "", "", "", false
		case t.is("VALUES"):
			return strings.TrimSpace(q[:t.start]), "Values", q[t.end:], true
		case t.is("FORMAT") && i+1 < len(toks) && toks[i+1].word:
			f := toks[i+1]
			rest := q[f.end:]
			// The data starts after the format name's line, as in ClickHouse.
			rest = strings.TrimLeft(rest, " \t")
			if strings.HasPrefix(rest, "\r\n") {
				rest = rest[2:]
			} else if strings.HasPrefix(rest, "\n") {
				rest = rest[1:]
			}
			return strings.TrimSpace(q[:t.start]), q[f.start:f.end], rest, true
		}
	}
	return "", "", "", false
}

// formatClause reports the format named by a top-level FORMAT clause of a
// non-INSERT statement, "" when there is none.
func formatClause(q string) string {
	toks := scan(q, -1)
	if len(toks) > 0 && toks[0].is("INSERT") {
		return ""
	}
	// FORMAT f ends a statement (only SETTINGS may follow), which tells it
	// from a column that happens to be called format.
	for i, t := range toks {
		if t.is("FORMAT") && i+1 < len(toks) && toks[i+1].word && (i+2 == len(toks) || toks[i+2].is("SETTINGS")) {
			return q[toks[i+1].start:toks[i+1].end]
		}
	}
	return ""
}

// firstKeyword is the statement's first word, upper-cased.
func firstKeyword(q string) string {
	toks := scan(q, 1)
	if len(toks) == 0 || !toks[0].word {
		return ""
	}
	return strings.ToUpper(q[toks[0].start:toks[0].end])
}

type token struct {
	start, end int
	word       bool // bare identifier or keyword
	text       string
}

func (t token) is(kw string) bool { return t.word && strings.EqualFold(t.text, kw) }

// scan tokenizes the top level of a statement: bare words outside quotes,
// comments and parentheses, up to max tokens (-1: all). Everything else is
// skipped; that is enough to find INSERT/SELECT/VALUES/FORMAT. For INSERT
// statements scanning stops at VALUES or FORMAT, so inline data is never
// tokenized.
func scan(q string, max int) []token {
	var toks []token
	depth := 0
	for i := 0; i < len(q); {
		if max >= 0 && len(toks) >= max {
			break
		}
		c := q[i]
		switch {
		case c == '-' && i+1 < len(q) && q[i+1] == '-', c == '#':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return toks
			}
			i += end + 4
		case c == '\'' || c == '"' || c == '`':
			i++
			for i < len(q) && q[i] != c {
				if q[i] == '\\' {
					i++
				}
				i++
			}
			i++
		case c == '(' || c == '[':
			depth++
			i++
		case c == ')' || c == ']':
			depth--
			i++
		case c == '_' || unicode.IsLetter(rune(c)):
			j := i
			for j < len(q) && (q[j] == '_' || q[j] >= 0x80 || unicode.IsLetter(rune(q[j])) || unicode.IsDigit(rune(q[j]))) {
				j++
			}
			if depth == 0 {
				t := token{start: i, end: j, word: true, text: q[i:j]}
				toks = append(toks, t)
				if len(toks) > 0 && toks[0].is("INSERT") && (t.is("VALUES") || t.is("FORMAT")) {
					// Take the format name, then stop before inline data.
					if t.is("FORMAT") {
						k := j
						for k < len(q) && (q[k] == ' ' || q[k] == '\t' || q[k] == '\n' || q[k] == '\r') {
							k++
						}
						e := k
						for e < len(q) && (q[e] == '_' || unicode.IsLetter(rune(q[e])) || unicode.IsDigit(rune(q[e]))) {
							e++
						}
						if e > k {
							toks = append(toks, token{start: k, end: e, word: true, text: q[k:e]})
						}
					}
					return toks
				}
			}
			i = j
		default:
			i++
		}
	}
	return toks
}

// quoteString makes a ClickHouse string literal.
func quoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// quoteIdent makes a ClickHouse identifier in backquotes.
func quoteIdent(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}

// validSettingName guards the names we splice into SET statements.
func validSettingName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
