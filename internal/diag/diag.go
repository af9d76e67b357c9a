// Package diag is how Fermion's parsers of outside input (manifests, policy and case
// files) report mistakes: a problem positioned by file, line, column and field, in the
// "file:line:col: field: msg" form editors jump to, sorted in file order, with "did you
// mean" suggestions for misspelt names.
package diag

import (
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a file. Line and Col are 1-based and zero when
// unknown (for example when the offending key is absent).
type Problem struct {
	File  string
	Line  int
	Col   int
	Field string // path such as "limits.memory" or "spec.validations[0].expression"
	Msg   string // what is wrong and how to fix it
}

// String renders the problem as "file:line:col: field: msg".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteString(":" + strconv.Itoa(p.Col))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Join renders problems one per line.
func Join(ps []Problem) string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Sort orders problems by position. Problems without a line (absent keys) go last:
// they read as "and also missing:" after the in-file ones.
func Sort(ps []Problem) {
	key := func(p Problem) int {
		if p.Line == 0 {
			return int(^uint(0) >> 1)
		}
		return p.Line
	}
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := key(ps[i]), key(ps[j])
		if li != lj {
			return li < lj
		}
		return ps[i].Col < ps[j].Col
	})
}

// EditDistance is the optimal-string-alignment distance (Levenshtein plus adjacent
// transpositions), so "nmae" is one edit from "name".
func EditDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Suggestions for absurdly long keys are useless; skip the quadratic work.
		return 1 << 30
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// Closest returns the candidate nearest to s (ignoring case) within two edits, or ""
// when nothing is close enough to be a plausible typo.
func Closest(s string, candidates []string) string {
	const maxSuggestDistance = 2
	best, bestD := "", maxSuggestDistance+1
	for _, c := range candidates {
		if d := EditDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
