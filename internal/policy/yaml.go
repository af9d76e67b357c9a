package policy

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	goyaml "github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Bounds on the documents ParseFile and ParseCases accept. They are far above what a
// policy needs and low enough that a hostile or broken file costs milliseconds.
const (
	// MaxPolicySize is the largest policy file accepted.
	MaxPolicySize = 256 << 10
	// MaxCaseFileSize is the largest case file accepted (cases carry whole inputs).
	MaxCaseFileSize = 1 << 20
	// MaxDepth is the deepest nesting of mappings and sequences accepted.
	MaxDepth = 32
)

// scanDepthLimit is where the pre-parse scan gives up. The YAML parser takes time
// quadratic in nesting depth (100,000 "[" take minutes), so nesting is bounded before
// it runs; the scan's estimate is rough, hence the margin over MaxDepth, which the
// exact check after parsing enforces.
const scanDepthLimit = 3 * MaxDepth

type ykind uint8

const (
	yNull ykind = iota
	yScalar
	yMap
	ySeq
)

// ynode is a YAML node reduced to what decoding needs, with its position. Anchors,
// aliases, tags and merge keys are refused while building it, so a node tree is
// always a plain tree no larger than the document.
type ynode struct {
	kind      ykind
	line, col int // 1-based; col 0 when unknown

	keys, vals []*ynode // yMap, in document order
	items      []*ynode // ySeq

	// yScalar: val is string, int64, uint64, float64 or bool; text is how it was
	// written, so a string field given 1.10 gets "1.10" and not "1.1".
	val  any
	text string
	// quoted is true for '…' and "…" scalars, whose content starts one column after
	// col; block is true for | and > scalars, whose content starts on line with
	// indent leading blanks.
	quoted, block bool
	indent        int
}

func (n *ynode) describe() string {
	switch n.kind {
	case yNull:
		return "null"
	case yMap:
		return "a mapping"
	case ySeq:
		return "a list"
	}
	switch v := n.val.(type) {
	case string:
		return "string " + quoteShort(v)
	case bool:
		return "boolean " + n.text
	case float64:
		return "number " + n.text
	default:
		return "integer " + n.text
	}
}

// parseYAML turns one YAML document into a node tree. Every failure is a Problem that
// names file and, when known, line and column.
func parseYAML(file string, data []byte, maxSize int) (*ynode, *Problem) {
	if len(data) > maxSize {
		return nil, &Problem{File: file, Msg: fmt.Sprintf("file is %d bytes; the limit is %d KiB: split it into several files", len(data), maxSize>>10)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return nil, &Problem{File: file, Msg: "file is not valid UTF-8"}
	}
	if line, col, msg := scanShape(data); msg != "" {
		return nil, &Problem{File: file, Line: line, Col: col, Msg: msg}
	}
	f, err := parseBytes(data)
	if err != nil {
		return nil, syntaxProblem(file, err)
	}
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	switch len(docs) {
	case 0:
		return nil, &Problem{File: file, Msg: "file is empty"}
	case 1:
	default:
		tk := docs[1].Body.GetToken()
		p := &Problem{File: file, Msg: "file holds more than one YAML document; put one per file"}
		if tk != nil && tk.Position != nil {
			p.Line, p.Col = tk.Position.Line, tk.Position.Column
		}
		return nil, p
	}
	b := &treeBuilder{file: file, lines: bytes.Split(data, []byte("\n"))}
	n := b.build(docs[0].Body, 1)
	switch {
	case b.prob != nil:
		return nil, b.prob
	case n == nil: // only comments
		return nil, &Problem{File: file, Msg: "file is empty"}
	}
	return n, nil
}

// parseBytes runs the YAML parser, turning a panic in it into an error: ParseFile must
// never panic, whatever it is given.
func parseBytes(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

func syntaxProblem(file string, err error) *Problem {
	p := &Problem{File: file}
	if ye, ok := err.(goyaml.Error); ok {
		p.Msg = "invalid YAML: " + ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Line, p.Col = tk.Position.Line, tk.Position.Column
		}
		if strings.Contains(p.Msg, "cannot start any token") && strings.Contains(p.Msg, "'\t'") {
			p.Msg += "; indent with spaces, not tabs"
		}
		return p
	}
	p.Msg = "invalid YAML: " + err.Error()
	return p
}

// scanShape rejects, before parsing, the shapes on which the YAML parser is slow: its
// time is quadratic in nesting depth (100,000 "[" take minutes) and in the number of
// entries of one block mapping (25,000 keys take seconds; 1,000 take milliseconds).
//
// Depth is estimated as open flow brackets plus block levels (a stack of indentation
// columns, with each "- " or "? " on a line opening one more); it overestimates only
// in odd files (brackets in plain scalars that start a token). Entries are lines that
// start a key or list item at the same column of the same level.
func scanShape(data []byte) (line, col int, msg string) {
	type level struct{ col, entries int }
	var levels []level // open block levels
	flow := 0
	tooDeep := fmt.Sprintf("nested deeper than %d levels; flatten the document", MaxDepth)
	line = 1
	for len(data) > 0 {
		end := bytes.IndexByte(data, '\n')
		var ln []byte
		if end < 0 {
			ln, data = data, nil
		} else {
			ln, data = data[:end], data[end+1:]
		}
		i := 0
		if flow == 0 {
			for i < len(ln) && ln[i] == ' ' {
				i++
			}
			if i < len(ln) && ln[i] != '#' && ln[i] != '\r' {
				for len(levels) > 0 && levels[len(levels)-1].col > i {
					levels = levels[:len(levels)-1]
				}
				if len(levels) == 0 || levels[len(levels)-1].col < i {
					levels = append(levels, level{col: i})
				}
				if top := &levels[len(levels)-1]; startsEntry(ln[i:]) {
					if top.entries++; top.entries > maxEntries {
						return line, i + 1, fmt.Sprintf("more than %d entries at one level; split the document", maxEntries)
					}
				}
				for i+1 < len(ln) && (ln[i] == '-' || ln[i] == '?') && (ln[i+1] == ' ') {
					i += 2
					for i < len(ln) && ln[i] == ' ' {
						i++
					}
					levels = append(levels, level{col: i})
					if len(levels) > scanDepthLimit {
						return line, i + 1, tooDeep
					}
				}
			}
		}
		var quote byte
		prev := byte(' ')
		for ; i < len(ln); i++ {
			c := ln[i]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				} else if c == '\\' && quote == '"' {
					i++
				}
			case c == '#' && (prev == ' ' || prev == '\t'):
				i = len(ln)
			case (c == '"' || c == '\'') && startsToken(prev):
				quote = c
			case (c == '[' || c == '{') && startsToken(prev):
				flow++
				if len(levels)+flow > scanDepthLimit {
					return line, i + 1, tooDeep
				}
			case (c == ']' || c == '}') && flow > 0:
				flow--
			}
			prev = c
		}
		line++
	}
	return 0, 0, ""
}

// maxEntries bounds the keys or items at one level of a block collection.
const maxEntries = 1000

// startsEntry reports whether a line's content starts a list item or a key.
func startsEntry(s []byte) bool {
	if len(s) > 0 && s[0] == '-' && (len(s) == 1 || s[1] == ' ' || s[1] == '\r') {
		return true
	}
	s = bytes.TrimRight(s, " \r")
	return bytes.Contains(s, []byte(": ")) || bytes.HasSuffix(s, []byte(":"))
}

func startsToken(prev byte) bool {
	return strings.IndexByte(" \t[{,:-?", prev) >= 0
}

type treeBuilder struct {
	file  string
	lines [][]byte
	prob  *Problem
}

func (b *treeBuilder) fail(n ast.Node, format string, args ...any) *ynode {
	if b.prob == nil {
		b.prob = &Problem{File: b.file, Msg: fmt.Sprintf(format, args...)}
		if n != nil {
			if tk := n.GetToken(); tk != nil && tk.Position != nil {
				b.prob.Line, b.prob.Col = tk.Position.Line, tk.Position.Column
			}
		}
	}
	return nil
}

func (b *treeBuilder) build(n ast.Node, depth int) *ynode {
	if b.prob != nil || n == nil {
		return nil
	}
	pos := func(y *ynode) *ynode {
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			y.line, y.col = tk.Position.Line, tk.Position.Column
		}
		return y
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		if depth > MaxDepth {
			return b.fail(n, "nested deeper than %d levels; flatten the document", MaxDepth)
		}
		y := pos(&ynode{kind: yMap})
		seen := make(map[string]int, len(v.Values))
		for _, mv := range v.Values {
			if !b.pair(y, mv, depth, seen) {
				return nil
			}
		}
		return y
	case *ast.MappingValueNode:
		if depth > MaxDepth {
			return b.fail(n, "nested deeper than %d levels; flatten the document", MaxDepth)
		}
		y := pos(&ynode{kind: yMap})
		if mk, ok := v.Key.(ast.Node); ok {
			if tk := mk.GetToken(); tk != nil && tk.Position != nil {
				y.line, y.col = tk.Position.Line, tk.Position.Column
			}
		}
		if !b.pair(y, v, depth, map[string]int{}) {
			return nil
		}
		return y
	case *ast.SequenceNode:
		if depth > MaxDepth {
			return b.fail(n, "nested deeper than %d levels; flatten the document", MaxDepth)
		}
		y := pos(&ynode{kind: ySeq})
		for _, it := range v.Values {
			c := b.build(it, depth+1)
			if b.prob != nil {
				return nil
			}
			if c == nil {
				c = &ynode{kind: yNull, line: y.line}
			}
			y.items = append(y.items, c)
		}
		return y
	case *ast.NullNode:
		return pos(&ynode{kind: yNull})
	case *ast.StringNode:
		y := pos(&ynode{kind: yScalar, val: v.Value, text: v.Value})
		if tk := v.GetToken(); tk != nil {
			y.quoted = tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType
		}
		return y
	case *ast.LiteralNode:
		text := ""
		if v.Value != nil {
			text = v.Value.Value
		}
		y := pos(&ynode{kind: yScalar, val: text, text: text, block: true})
		// The content starts on the line after the | or > header, indented.
		y.line++
		y.col = 0
		for l := y.line; l-1 < len(b.lines); l++ {
			ln := b.lines[l-1]
			t := bytes.TrimLeft(ln, " ")
			if len(bytes.TrimSpace(t)) > 0 {
				y.line, y.indent = l, len(ln)-len(t)
				break
			}
		}
		return y
	case *ast.IntegerNode:
		y := pos(&ynode{kind: yScalar, text: tokenText(v)})
		switch x := v.Value.(type) {
		case int64:
			y.val = x
		case uint64:
			y.val = x
		default:
			y.val = int64(0)
		}
		return y
	case *ast.FloatNode:
		return pos(&ynode{kind: yScalar, val: v.Value, text: tokenText(v)})
	case *ast.InfinityNode:
		return pos(&ynode{kind: yScalar, val: v.Value, text: tokenText(v)})
	case *ast.NanNode:
		return pos(&ynode{kind: yScalar, val: math.NaN(), text: tokenText(v)})
	case *ast.BoolNode:
		return pos(&ynode{kind: yScalar, val: v.Value, text: tokenText(v)})
	case *ast.CommentGroupNode, *ast.CommentNode:
		return nil
	case *ast.AnchorNode, *ast.AliasNode, *ast.MergeKeyNode:
		return b.fail(n, "YAML anchors, aliases and merge keys are not supported; write the value out")
	case *ast.TagNode:
		return b.fail(n, "YAML tags such as %s are not supported; remove the tag", tokenText(v))
	default:
		return b.fail(n, "unsupported YAML node %s", n.Type())
	}
}

func tokenText(n ast.Node) string {
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

// pair adds one key: value to map y.
func (b *treeBuilder) pair(y *ynode, mv *ast.MappingValueNode, depth int, seen map[string]int) bool {
	if mv == nil || mv.Key == nil {
		var at ast.Node // a nil *MappingValueNode in an interface would not be nil
		if mv != nil {
			at = mv
		}
		b.fail(at, "mapping entry without a key")
		return false
	}
	k := b.build(mv.Key, depth+1)
	if b.prob != nil {
		return false
	}
	if k == nil || k.kind != yScalar {
		b.fail(mv.Key, "mapping keys must be plain strings")
		return false
	}
	if s, ok := k.val.(string); !ok {
		k.val = k.text
	} else if s == "" && !k.quoted {
		b.fail(mv.Key, "empty mapping key")
		return false
	}
	key := k.val.(string)
	if line, dup := seen[key]; dup {
		b.fail(mv.Key, "key %q appears twice (first at line %d)", key, line)
		return false
	}
	seen[key] = k.line
	v := b.build(mv.Value, depth+1)
	if b.prob != nil {
		return false
	}
	if v == nil {
		v = &ynode{kind: yNull, line: k.line}
	}
	y.keys = append(y.keys, k)
	y.vals = append(y.vals, v)
	return true
}

// get returns the value of key in mapping n, or nil.
func (n *ynode) get(key string) *ynode {
	for i, k := range n.keys {
		if k.val.(string) == key {
			return n.vals[i]
		}
	}
	return nil
}
