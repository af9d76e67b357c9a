package slo

// The YAML tree: the parser's AST reduced to mappings, lists and scalars with their
// positions, with the shapes an SLO file has no use for (anchors, tags, deep nesting)
// refused before or while it is built.

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	goyaml "github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

type ykind uint8

const (
	yNull ykind = iota
	yScalar
	yMap
	ySeq
)

// ynode is a YAML node reduced to what decoding needs, with its position. text is the
// scalar as written, so 99.9 stays "99.9" and is parsed exactly.
type ynode struct {
	kind      ykind
	line, col int
	keys      []string
	keyPos    [][2]int
	vals      []*ynode
	items     []*ynode
	text      string
	isString  bool
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
	return fmt.Sprintf("%q", n.text)
}

func parseDocs(file string, data []byte) ([]*ynode, *Problem) {
	if len(data) > MaxFileSize {
		return nil, &Problem{File: file, Msg: fmt.Sprintf("file is %d bytes; the limit is %d KiB: split it into several files", len(data), MaxFileSize>>10)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return nil, &Problem{File: file, Msg: "file is not valid UTF-8"}
	}
	if line := tooNested(data); line > 0 {
		return nil, &Problem{File: file, Line: line, Msg: fmt.Sprintf("nested deeper than %d levels; an SLO needs at most four", maxNesting)}
	}
	f, err := parseBytes(data)
	if err != nil {
		p := &Problem{File: file, Msg: "invalid YAML: " + err.Error()}
		if ye, ok := err.(goyaml.Error); ok {
			p.Msg = "invalid YAML: " + ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				p.Line, p.Col = tk.Position.Line, tk.Position.Column
			}
		}
		return nil, p
	}
	var docs []*ynode
	b := &builder{file: file}
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		n := b.build(d.Body)
		if b.prob != nil {
			return nil, b.prob
		}
		if n == nil { // a document of comments only
			continue
		}
		if len(docs) == MaxDocuments {
			return nil, &Problem{File: file, Line: n.line, Msg: fmt.Sprintf("more than %d SLOs in one file; split it", MaxDocuments)}
		}
		docs = append(docs, n)
	}
	if len(docs) == 0 {
		return nil, &Problem{File: file, Msg: "file holds no SLO"}
	}
	return docs, nil
}

// tooNested returns the first line at which flow brackets plus indentation steps
// exceed maxNesting, or 0. It over-counts brackets inside quoted or plain scalars, which
// an SLO file has no reason to hold in such numbers.
func tooNested(data []byte) int {
	flow := 0
	for i, ln := range bytes.Split(data, []byte("\n")) {
		indent := len(ln) - len(bytes.TrimLeft(ln, " -"))
		for _, c := range ln {
			switch c {
			case '[', '{':
				flow++
			case ']', '}':
				flow = max(flow-1, 0)
			}
		}
		if flow > maxNesting || indent > 2*maxNesting+8 {
			return i + 1
		}
	}
	return 0
}

// parseBytes runs the YAML parser, turning a panic in it into an error: Decode must
// never panic, whatever it is given.
func parseBytes(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

type builder struct {
	file  string
	prob  *Problem
	depth int
}

func (b *builder) fail(n ast.Node, format string, args ...any) *ynode {
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

func (b *builder) build(n ast.Node) *ynode {
	if b.prob != nil || n == nil {
		return nil
	}
	b.depth++
	defer func() { b.depth-- }()
	if b.depth > maxNesting {
		return b.fail(n, "nested deeper than %d levels; an SLO needs at most four", maxNesting)
	}
	y := &ynode{}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		y.line, y.col = tk.Position.Line, tk.Position.Column
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		y.kind = yMap
		for _, mv := range v.Values {
			if !b.pair(y, mv) {
				return nil
			}
		}
		if len(y.keyPos) > 0 { // the parser positions a mapping at its first value
			y.line, y.col = y.keyPos[0][0], y.keyPos[0][1]
		}
	case *ast.MappingValueNode:
		y.kind = yMap
		if !b.pair(y, v) {
			return nil
		}
		y.line, y.col = y.keyPos[0][0], y.keyPos[0][1]
	case *ast.SequenceNode:
		y.kind = ySeq
		for _, it := range v.Values {
			c := b.build(it)
			if b.prob != nil {
				return nil
			}
			if c == nil {
				c = &ynode{kind: yNull, line: y.line}
			}
			y.items = append(y.items, c)
		}
	case *ast.NullNode:
		y.kind = yNull
	case *ast.StringNode:
		y.kind, y.text, y.isString = yScalar, v.Value, true
	case *ast.LiteralNode:
		y.kind, y.isString = yScalar, true
		if v.Value != nil {
			y.text = v.Value.Value
		}
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		y.kind = yScalar
		if tk := n.GetToken(); tk != nil {
			y.text = tk.Value
		}
	case *ast.CommentGroupNode, *ast.CommentNode:
		return nil
	case *ast.AnchorNode, *ast.AliasNode, *ast.MergeKeyNode:
		return b.fail(n, "YAML anchors, aliases and merge keys are not supported; write the value out")
	case *ast.TagNode:
		return b.fail(n, "YAML tags are not supported; remove the tag")
	default:
		return b.fail(n, "unsupported YAML node %s", n.Type())
	}
	return y
}

func (b *builder) pair(y *ynode, mv *ast.MappingValueNode) bool {
	if mv == nil || mv.Key == nil {
		var at ast.Node
		if mv != nil {
			at = mv
		}
		b.fail(at, "mapping entry without a key")
		return false
	}
	k := b.build(mv.Key)
	if b.prob != nil {
		return false
	}
	if k == nil || k.kind != yScalar || k.text == "" {
		b.fail(mv.Key, "mapping keys must be non-empty plain strings")
		return false
	}
	for i, prev := range y.keys {
		if prev == k.text {
			b.fail(mv.Key, "key %q appears twice (first at line %d)", k.text, y.keyPos[i][0])
			return false
		}
	}
	v := b.build(mv.Value)
	if b.prob != nil {
		return false
	}
	if v == nil {
		v = &ynode{kind: yNull, line: k.line, col: k.col}
	}
	y.keys = append(y.keys, k.text)
	y.keyPos = append(y.keyPos, [2]int{k.line, k.col})
	y.vals = append(y.vals, v)
	return true
}
