package dashboards

import (
	"sort"
	"strings"
)

// notMetrics are PromQL's keywords and aggregation operators: identifiers that name no
// series even when no parenthesis follows them (sum by (x) (...)).
var notMetrics = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// grouping keywords take a parenthesised list of label names, not expressions.
var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// MetricNames returns the series names a PromQL expression selects, sorted and
// deduplicated: bare selectors (metric{...}) and {__name__="metric"}. It is a lexer,
// not a parser: it assumes a valid expression (promtool checks that separately) and
// only has to tell a metric name from a function, keyword, label or literal.
func MetricNames(expr string) []string {
	seen := map[string]bool{}
	i := 0
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '{':
			i = matchers(expr, i, seen)
		case c == '[':
			for i < len(expr) && expr[i] != ']' {
				i++
			}
			i++
		case isDigit(c) || (c == '.' && i+1 < len(expr) && isDigit(expr[i+1])):
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && isSpace(expr[k]) {
				k++
			}
			paren := k < len(expr) && expr[k] == '('
			switch {
			case grouping[word] && paren:
				for k < len(expr) && expr[k] != ')' {
					k++
				}
				j = k + 1
			case paren || notMetrics[word]:
				// a function call or an operator
			default:
				seen[word] = true
			}
			i = j
		default:
			i++
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// matchers skips a {...} label matcher list from its opening brace, noting a
// __name__="x" matcher's name, and returns the index past the closing brace.
func matchers(expr string, i int, seen map[string]bool) int {
	i++
	for i < len(expr) && expr[i] != '}' {
		if isIdentStart(expr[i]) {
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			label := expr[i:j]
			k := j
			for k < len(expr) && isSpace(expr[k]) {
				k++
			}
			if label == "__name__" && k+1 < len(expr) && expr[k] == '=' && expr[k+1] != '~' {
				k++
				for k < len(expr) && isSpace(expr[k]) {
					k++
				}
				if k < len(expr) && (expr[k] == '"' || expr[k] == '\'' || expr[k] == '`') {
					end := skipString(expr, k)
					if end-1 > k+1 {
						seen[strings.TrimSpace(expr[k+1:end-1])] = true
					}
					i = end
					continue
				}
			}
			i = j
			continue
		}
		if expr[i] == '"' || expr[i] == '\'' || expr[i] == '`' {
			i = skipString(expr, i)
			continue
		}
		i++
	}
	return i + 1
}

// skipString returns the index past the string literal that opens at i.
func skipString(s string, i int) int {
	q := s[i]
	i++
	for i < len(s) && s[i] != q {
		if s[i] == '\\' && q != '`' {
			i++
		}
		i++
	}
	return i + 1
}

func isSpace(c byte) bool      { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }
