package manifest

import (
	"fermion.dev/fermion/internal/diag"

	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a manifest.
type Problem = diag.Problem

// Error carries every problem found in a manifest, so a user can fix them all
// in one edit instead of discovering them one run at a time.
type Error struct {
	Problems []Problem
}

// Error joins the problems one per line, in file order.
func (e *Error) Error() string {
	if e == nil || len(e.Problems) == 0 {
		return "invalid manifest"
	}
	return diag.Join(e.Problems)
}

// --- paths -----------------------------------------------------------------

// joinPath appends a key to a dotted field path, quoting keys that are not
// bare TOML keys so that "app.labels.\"a.b/c\"" stays unambiguous. The key
// scanner and the decoder both build paths with it, which is what lets a
// decoder path be looked up in the scanner's position index.
func joinPath(parent, key string) string {
	seg := key
	if !isBareKey(key) {
		seg = strconv.Quote(key)
	}
	if parent == "" {
		return seg
	}
	return parent + "." + seg
}

func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// --- key positions ---------------------------------------------------------

// position is where a key (or array element) starts in the source.
type position struct{ line, col int }

// indexKeys maps every key path in a TOML document to where it is written.
//
// BurntSushi/toml v1.6 records key positions internally but does not export
// them from MetaData, so this is a small scanner over source that the toml
// library has already accepted. It understands table and array-of-table
// headers, dotted and quoted keys, inline tables, arrays and all string
// forms, which is what is needed to find the right line. It must not panic
// or loop on any input, because the fuzzer feeds it everything.
func indexKeys(src string) map[string]position {
	sc := &keyScanner{src: src, idx: map[string]position{}, aot: map[string]int{}}
	sc.lineStarts = []int{0}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			sc.lineStarts = append(sc.lineStarts, i+1)
		}
	}
	sc.run()
	return sc.idx
}

type keyScanner struct {
	src        string
	i          int
	lineStarts []int
	idx        map[string]position
	aot        map[string]int // resolved array-of-tables path -> elements seen
	table      string         // resolved path of the current [table]
}

const maxScanDepth = 256

func (sc *keyScanner) pos(off int) position {
	// Binary search the line containing off.
	n := sort.Search(len(sc.lineStarts), func(i int) bool { return sc.lineStarts[i] > off }) - 1
	if n < 0 {
		n = 0
	}
	return position{line: n + 1, col: off - sc.lineStarts[n] + 1}
}

func (sc *keyScanner) record(path string, off int) {
	if _, ok := sc.idx[path]; !ok {
		sc.idx[path] = sc.pos(off)
	}
}

func (sc *keyScanner) eof() bool { return sc.i >= len(sc.src) }

func (sc *keyScanner) peek(k int) byte {
	if sc.i+k < len(sc.src) {
		return sc.src[sc.i+k]
	}
	return 0
}

// skipSpace skips blanks on the current line.
func (sc *keyScanner) skipSpace() {
	for !sc.eof() && (sc.src[sc.i] == ' ' || sc.src[sc.i] == '\t') {
		sc.i++
	}
}

// skipBlank skips blanks, newlines, comments and a byte-order mark.
func (sc *keyScanner) skipBlank() {
	for !sc.eof() {
		switch c := sc.src[sc.i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			sc.i++
		case c == '#':
			for !sc.eof() && sc.src[sc.i] != '\n' {
				sc.i++
			}
		case strings.HasPrefix(sc.src[sc.i:], "\uFEFF"):
			sc.i += len("\uFEFF")
		default:
			return
		}
	}
}

func (sc *keyScanner) run() {
	for {
		sc.skipBlank()
		if sc.eof() {
			return
		}
		start := sc.i
		if sc.src[sc.i] == '[' {
			sc.header()
		} else {
			sc.keyValue(sc.table, 0)
		}
		if sc.i == start {
			sc.i++ // garbage; guarantee progress
		}
	}
}

func (sc *keyScanner) header() {
	start := sc.i
	aot := sc.peek(1) == '['
	if aot {
		sc.i += 2
	} else {
		sc.i++
	}
	sc.skipSpace()
	keys := sc.key()
	path := ""
	for n, k := range keys {
		path = joinPath(path, k)
		last := n == len(keys)-1
		if last && aot {
			c := sc.aot[path]
			sc.aot[path] = c + 1
			sc.record(path, start)
			path = indexPath(path, c)
		} else if c, ok := sc.aot[path]; ok && c > 0 {
			// A header below an array of tables refers to its last element.
			path = indexPath(path, c-1)
		}
		sc.record(path, start)
	}
	sc.table = path
	for !sc.eof() && sc.src[sc.i] != '\n' && sc.src[sc.i] != '#' {
		sc.i++
	}
}

// keyValue scans `dotted.key = value` under parent.
func (sc *keyScanner) keyValue(parent string, depth int) {
	start := sc.i
	keys := sc.key()
	if len(keys) == 0 {
		return
	}
	path := parent
	for _, k := range keys {
		path = joinPath(path, k)
		sc.record(path, start)
	}
	sc.skipSpace()
	if sc.peek(0) == '=' {
		sc.i++
	}
	sc.skipSpace()
	sc.value(path, depth+1)
}

// key scans a possibly dotted key and returns its decoded parts.
func (sc *keyScanner) key() []string {
	var parts []string
	for {
		sc.skipSpace()
		if sc.eof() {
			return parts
		}
		c := sc.src[sc.i]
		switch {
		case c == '"':
			raw := sc.skipString()
			parts = append(parts, unquoteBasic(raw))
		case c == '\'':
			raw := sc.skipString()
			parts = append(parts, strings.Trim(raw, "'"))
		case isBareKeyByte(c):
			s := sc.i
			for !sc.eof() && isBareKeyByte(sc.src[sc.i]) {
				sc.i++
			}
			parts = append(parts, sc.src[s:sc.i])
		default:
			return parts
		}
		sc.skipSpace()
		if sc.peek(0) != '.' {
			return parts
		}
		sc.i++
	}
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c >= 0x80
}

func (sc *keyScanner) value(path string, depth int) {
	if sc.eof() {
		return
	}
	if depth > maxScanDepth {
		// Positions this deep are never reported; stop rather than recurse.
		sc.i = len(sc.src)
		return
	}
	switch sc.src[sc.i] {
	case '{':
		sc.i++
		for {
			sc.skipBlank() // TOML 1.1 allows newlines and comments here
			if sc.eof() {
				return
			}
			switch sc.src[sc.i] {
			case '}':
				sc.i++
				return
			case ',':
				sc.i++
				continue
			}
			before := sc.i
			sc.keyValue(path, depth)
			if sc.i == before {
				sc.i++
			}
		}
	case '[':
		sc.i++
		for n := 0; ; {
			sc.skipBlank()
			if sc.eof() {
				return
			}
			switch sc.src[sc.i] {
			case ']':
				sc.i++
				return
			case ',':
				sc.i++
				continue
			}
			before := sc.i
			el := indexPath(path, n)
			sc.record(el, sc.i)
			sc.value(el, depth+1)
			n++
			if sc.i == before {
				sc.i++
			}
		}
	case '"', '\'':
		sc.skipString()
	default:
		for !sc.eof() && !strings.ContainsRune(" \t\r\n,]}#", rune(sc.src[sc.i])) {
			sc.i++
		}
	}
}

// skipString advances over any of the four TOML string forms and returns
// the raw text including its quotes.
func (sc *keyScanner) skipString() string {
	start := sc.i
	q := sc.src[sc.i]
	triple := strings.Repeat(string(q), 3)
	if strings.HasPrefix(sc.src[sc.i:], triple) {
		sc.i += 3
		for !sc.eof() {
			if q == '"' && sc.src[sc.i] == '\\' {
				sc.i += 2
				continue
			}
			if strings.HasPrefix(sc.src[sc.i:], triple) {
				sc.i += 3
				// Up to two more quotes may belong to the content.
				for extra := 0; extra < 2 && sc.peek(0) == q; extra++ {
					sc.i++
				}
				break
			}
			sc.i++
		}
	} else {
		sc.i++
		for !sc.eof() && sc.src[sc.i] != '\n' {
			c := sc.src[sc.i]
			if q == '"' && c == '\\' {
				sc.i += 2
				continue
			}
			sc.i++
			if c == q {
				break
			}
		}
	}
	if sc.i > len(sc.src) {
		sc.i = len(sc.src)
	}
	return sc.src[start:sc.i]
}

// unquoteBasic decodes a "basic" TOML string well enough for key lookup.
// Unknown escapes are kept verbatim; a mismatch only costs a line number.
func unquoteBasic(raw string) string {
	s := strings.TrimPrefix(raw, `"`)
	s = strings.TrimSuffix(s, `"`)
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"', '\\':
			b.WriteByte(s[i])
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[i]]
			if i+n < len(s) {
				if r, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32); err == nil {
					b.WriteRune(rune(r))
					i += n
					continue
				}
			}
			b.WriteString(`\` + string(s[i]))
		default:
			b.WriteString(`\` + string(s[i]))
		}
	}
	return b.String()
}

// describe names a decoded TOML value for "must be X, not Y" messages.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return "string " + quoteShort(x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	default:
		return "a date/time"
	}
}

// quoteShort quotes s, eliding the middle of very long values so one bad
// value cannot flood the terminal.
func quoteShort(s string) string {
	const max = 60
	r := []rune(s)
	if len(r) > max {
		s = string(r[:max/2]) + "…" + string(r[len(r)-max/2:])
	}
	return strconv.Quote(s)
}
