package policy

import (
	"sync"
	"sync/atomic"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
)

// A placement constraint runs once per node per placement: 1,000 nodes and three
// constraints are 3,000 CEL evaluations, a millisecond or more, where the scheduler
// budgets 200 µs for the whole placement. But a constraint usually reads only a few
// labels and capacities, and fleets have few distinct combinations of them. CEL is
// deterministic and side-effect free, so a constraint's result is a function of the app
// (fixed per Placement call) and the node fields it reads: the constraints and
// preferences Placement returns remember their result per combination.
//
// nodeReads finds those fields in the checked expression. It is conservative: any use
// of node it does not recognise (node.name, node itself, node.labels as a whole, a
// label key that is not a constant, a variable named node in a comprehension) makes
// the expression not memoizable, and it is evaluated for every node.

const (
	maxMemoLabels  = 4    // label keys an expression may read and still be memoized
	maxMemoEntries = 4096 // results remembered per constraint
)

// nodeReads is what an expression reads of node.
type nodeReads struct {
	labels []string // label keys, each read by value and presence
	caps   [3]bool  // capacity memory, milli_cpu, instances
}

type memoKey struct {
	present uint8 // bit i: labels[i] is set
	labels  [maxMemoLabels]string
	caps    [3]int64
}

// equal compares a and b, which hold nl labels, faster than == on the whole struct.
func (a *memoKey) equal(b *memoKey, nl int) bool {
	if a.present != b.present || a.caps != b.caps {
		return false
	}
	for i := range nl {
		if a.labels[i] != b.labels[i] {
			return false
		}
	}
	return true
}

// key is the memo key of n, the values of the fields r reads.
func (r *nodeReads) key(n *NodeInput) memoKey {
	var k memoKey
	for i, l := range r.labels {
		if v, ok := n.Labels[l]; ok {
			k.present |= 1 << i
			k.labels[i] = v
		}
	}
	if r.caps[0] {
		k.caps[0] = n.Capacity.Memory
	}
	if r.caps[1] {
		k.caps[1] = n.Capacity.MilliCPU
	}
	if r.caps[2] {
		k.caps[2] = n.Capacity.Instances
	}
	return k
}

// readsOfNode analyses a checked expression; nil means it cannot be memoized.
func readsOfNode(a *ast.AST) *nodeReads {
	if a == nil {
		return nil
	}
	w := &readWalker{reads: &nodeReads{}}
	w.walk(a.Expr(), nil)
	if w.bad {
		return nil
	}
	return w.reads
}

type readWalker struct {
	reads *nodeReads
	bad   bool
	path  []ast.Expr // ancestors of the expression being walked, parent last
}

func (w *readWalker) walk(e, parent ast.Expr) {
	if w.bad || e == nil {
		return
	}
	if parent != nil {
		w.path = append(w.path, parent)
		defer func() { w.path = w.path[:len(w.path)-1] }()
	}
	switch e.Kind() {
	case ast.IdentKind:
		if e.AsIdent() == "node" {
			w.nodeUse(e)
		}
	case ast.SelectKind:
		w.walk(e.AsSelect().Operand(), e)
	case ast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() {
			w.walk(c.Target(), e)
		}
		for _, a := range c.Args() {
			w.walk(a, e)
		}
	case ast.ListKind:
		for _, el := range e.AsList().Elements() {
			w.walk(el, e)
		}
	case ast.MapKind:
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			w.walk(me.Key(), e)
			w.walk(me.Value(), e)
		}
	case ast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			w.walk(f.AsStructField().Value(), e)
		}
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		if c.IterVar() == "node" || c.IterVar2() == "node" || c.AccuVar() == "node" {
			w.bad = true
			return
		}
		for _, x := range []ast.Expr{c.IterRange(), c.AccuInit(), c.LoopCondition(), c.LoopStep(), c.Result()} {
			w.walk(x, e)
		}
	}
}

// ancestor returns the i-th ancestor of the expression being walked (1: parent).
func (w *readWalker) ancestor(i int) ast.Expr {
	if i > len(w.path) {
		return nil
	}
	return w.path[len(w.path)-i]
}

// selectOf reports whether e selects field (any field if "") from operand.
func selectOf(e, operand ast.Expr) (field string, ok bool) {
	if e == nil || e.Kind() != ast.SelectKind || e.AsSelect().Operand().ID() != operand.ID() {
		return "", false
	}
	return e.AsSelect().FieldName(), true
}

// nodeUse records what the use of node at ident reads. Only node.capacity.<field> and
// node.labels[<constant>] (in any of its spellings: .key, [key], .?key, [?key],
// has(.key), key in) are understood.
func (w *readWalker) nodeUse(ident ast.Expr) {
	p1 := w.ancestor(1)
	field, ok := selectOf(p1, ident)
	if !ok || p1.AsSelect().IsTestOnly() {
		w.bad = true
		return
	}
	p2 := w.ancestor(2)
	switch field {
	case "capacity":
		f, ok := selectOf(p2, p1)
		i := map[string]int{"memory": 0, "milli_cpu": 1, "instances": 2}
		if n, known := i[f]; ok && known {
			w.reads.caps[n] = true
			return
		}
	case "labels":
		if k, ok := selectOf(p2, p1); ok {
			w.addLabel(k)
			return
		}
		if p2 != nil && p2.Kind() == ast.CallKind {
			c := p2.AsCall()
			args := c.Args()
			switch c.FunctionName() {
			case operators.Index, operators.OptIndex, operators.OptSelect:
				if len(args) != 2 || args[0].ID() != p1.ID() {
					break
				}
				if k, ok := constString(args[1]); ok {
					w.addLabel(k)
					return
				}
			case operators.In:
				if len(args) != 2 || args[1].ID() != p1.ID() {
					break
				}
				if k, ok := constString(args[0]); ok {
					w.addLabel(k)
					return
				}
			}
		}
	}
	w.bad = true
}

func (w *readWalker) addLabel(k string) {
	for _, l := range w.reads.labels {
		if l == k {
			return
		}
	}
	if len(w.reads.labels) == maxMemoLabels {
		w.bad = true
		return
	}
	w.reads.labels = append(w.reads.labels, k)
}

func constString(e ast.Expr) (string, bool) {
	if e == nil || e.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

// memo remembers results by memoKey. It is safe for concurrent use. A fleet has few
// distinct combinations, so the first ones live in a small copy-on-write slice that
// readers scan without locking (cheaper than hashing the key); the rest go to a map.
type memo[V any] struct {
	reads *nodeReads
	small atomic.Pointer[[]memoEntry[V]]
	full  atomic.Bool // small is full: look in big too

	mu  sync.Mutex // guards writes to small, and big
	big map[memoKey]V
}

type memoEntry[V any] struct {
	k memoKey
	v V
}

const maxSmallMemo = 16

func newMemo[V any](r *nodeReads) *memo[V] {
	if r == nil {
		return nil
	}
	return &memo[V]{reads: r}
}

// get returns the remembered result for n, or computes and remembers it.
func (m *memo[V]) get(n *NodeInput, compute func() V) V {
	if m == nil {
		return compute()
	}
	k := m.reads.key(n)
	if s := m.small.Load(); s != nil {
		nl := len(m.reads.labels)
		for i := range *s {
			if e := &(*s)[i]; e.k.equal(&k, nl) {
				return e.v
			}
		}
	}
	if m.full.Load() {
		m.mu.Lock()
		v, ok := m.big[k]
		m.mu.Unlock()
		if ok {
			return v
		}
	}
	v := compute()
	m.mu.Lock()
	defer m.mu.Unlock()
	var small []memoEntry[V]
	if s := m.small.Load(); s != nil {
		small = *s
	}
	switch {
	case len(small) < maxSmallMemo:
		grown := make([]memoEntry[V], len(small), len(small)+1)
		copy(grown, small)
		grown = append(grown, memoEntry[V]{k, v})
		m.small.Store(&grown)
	case len(m.big) < maxMemoEntries:
		if m.big == nil {
			m.big = make(map[memoKey]V)
		}
		m.big[k] = v
		m.full.Store(true)
	}
	return v
}
