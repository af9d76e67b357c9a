package policy

import (
	"fermion.dev/fermion/internal/diag"

	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// srcPos is where a value starts in its file, for mapping CEL positions back.
type srcPos struct {
	line, col     int
	quoted, block bool
	indent        int
}

// decoder fills Go values from a node tree by their json tags, strictly: unknown
// fields, wrong types and out-of-range numbers are Problems with the field path and
// position. It records where every scalar was written in pos.
type decoder struct {
	file    string
	probs   []Problem
	pos     map[string]srcPos
	dropped int // problems beyond maxProblems, counted only
}

// maxProblems bounds the problems reported for one file: past a screenful they stop
// helping, and a generated file could otherwise produce one per line.
const maxProblems = 50

func (d *decoder) problem(n *ynode, field, format string, args ...any) {
	if len(d.probs) >= maxProblems {
		d.dropped++
		return
	}
	p := Problem{File: d.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.line, n.col
	}
	d.probs = append(d.probs, p)
}

func joinField(parent, key string) string {
	if !isPlainKey(key) {
		key = strconv.Quote(key)
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexField(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func isPlainKey(s string) bool {
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

var anyType = reflect.TypeFor[any]()

func (d *decoder) decode(n *ynode, field string, v reflect.Value) {
	if d.pos != nil && n.kind == yScalar {
		d.pos[field] = srcPos{line: n.line, col: n.col, quoted: n.quoted, block: n.block, indent: n.indent}
	}
	t := v.Type()
	if t == ynodeType {
		v.Set(reflect.ValueOf(n))
		return
	}
	if t == anyType {
		if x := n.value(); x != nil {
			v.Set(reflect.ValueOf(x))
		} else {
			v.SetZero()
		}
		return
	}
	if n.kind == yNull {
		v.SetZero()
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(n, field, p.Elem())
		v.Set(p)
	case reflect.Struct:
		if n.kind != yMap {
			d.problem(n, field, "must be a mapping, not %s", n.describe())
			return
		}
		fields := structFields(t)
		for i, k := range n.keys {
			key := k.val.(string)
			f := joinField(field, key)
			idx, ok := fields[key]
			if !ok {
				d.problem(k, f, "unknown field%s", suggest(key, slices.Sorted(maps.Keys(fields))))
				continue
			}
			d.decode(n.vals[i], f, v.FieldByIndex(idx))
		}
	case reflect.Slice:
		if n.kind != ySeq {
			d.problem(n, field, "must be a list, not %s", n.describe())
			return
		}
		s := reflect.MakeSlice(t, len(n.items), len(n.items))
		for i, it := range n.items {
			d.decode(it, indexField(field, i), s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if n.kind != yMap {
			d.problem(n, field, "must be a mapping, not %s", n.describe())
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.keys))
		for i, k := range n.keys {
			key := k.val.(string)
			ev := reflect.New(t.Elem()).Elem()
			d.decode(n.vals[i], joinField(field, key), ev)
			m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), ev)
		}
		v.Set(m)
	case reflect.String:
		if n.kind != yScalar {
			d.problem(n, field, "must be a string, not %s", n.describe())
			return
		}
		if s, ok := n.val.(string); ok {
			v.SetString(s)
		} else {
			v.SetString(n.text) // YAML 1.1 would read "1.10" as 1.1; keep what was written
		}
	case reflect.Bool:
		b, ok := n.val.(bool)
		if !ok {
			d.problem(n, field, "must be true or false, not %s", n.describe())
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		var i int64
		switch x := n.val.(type) {
		case int64:
			i = x
		case uint64:
			if x > math.MaxInt64 {
				d.problem(n, field, "%s is too large", n.text)
				return
			}
			i = int64(x)
		default:
			d.problem(n, field, "must be an integer, not %s", n.describe())
			return
		}
		if v.OverflowInt(i) {
			d.problem(n, field, "%s is too large", n.text)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		var f float64
		switch x := n.val.(type) {
		case int64:
			f = float64(x)
		case uint64:
			f = float64(x)
		case float64:
			f = x
		default:
			d.problem(n, field, "must be a number, not %s", n.describe())
			return
		}
		v.SetFloat(f)
	default:
		d.problem(n, field, "cannot be decoded into %s", t)
	}
}

// value converts n to plain Go values: map[string]any, []any, string, int64, float64,
// bool or nil. Unsigned integers beyond int64 become float64.
func (n *ynode) value() any {
	switch n.kind {
	case yMap:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			m[k.val.(string)] = n.vals[i].value()
		}
		return m
	case ySeq:
		s := make([]any, len(n.items))
		for i, it := range n.items {
			s[i] = it.value()
		}
		return s
	case yScalar:
		if u, ok := n.val.(uint64); ok {
			if u <= math.MaxInt64 {
				return int64(u)
			}
			return float64(u)
		}
		return n.val
	}
	return nil
}

// structFields maps json names to field indexes; fields tagged "-" are not decoded.
func structFields(t reflect.Type) map[string][]int {
	m := map[string][]int{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Index
	}
	return m
}

// suggest names the closest known field, or lists them all.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := diag.EditDistance(strings.ToLower(key), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return "; known fields: " + strings.Join(known, ", ")
}

// quoteShort quotes s, eliding the middle of long values so one bad value cannot flood
// the terminal.
func quoteShort(s string) string {
	const max = 60
	r := []rune(s)
	if len(r) > max {
		s = string(r[:max/2]) + "…" + string(r[len(r)-max/2:])
	}
	return strconv.Quote(s)
}

// err returns the problems found as an *Error, or nil.
func (d *decoder) err() error {
	if len(d.probs) == 0 {
		return nil
	}
	diag.Sort(d.probs)
	probs := d.probs
	if d.dropped > 0 {
		probs = append(probs, Problem{File: d.file, Msg: fmt.Sprintf("and %d more problems", d.dropped)})
	}
	return &Error{Problems: probs}
}
