// Package scheduler decides which edge nodes run a deployment: Place takes the nodes and a
// request and returns the chosen nodes with a score breakdown, or an error that explains
// in counted reasons why too few nodes fit.
//
// It is pure: no clock, no I/O, no shared state, no goroutines, no background
// rebalancing. The same nodes and request always give the same decision, whatever order
// the nodes come in, so a controller may call it from any replica, replay it in tests and
// show its reasoning to an operator. The caller applies the decision; Place never mutates
// the nodes it is given.
//
// The pipeline is the one Nomad's and Kubernetes' schedulers use:
//
//  1. filter, with a named reason counted for every node left out: state, runtime
//     version, each Constraint, then capacity per resource;
//  2. sample: when more nodes fit than Request.SampleSize, score only a seeded,
//     order-independent sample of them (Nomad's limit iterator, Kubernetes'
//     percentageOfNodesToScore), always including the nodes in Request.Current;
//  3. score: resources (bin-pack or spread), spread across a topology label, weighted
//     Preferences, and a stickiness bonus that keeps Current nodes while they fit;
//  4. pick: the best Count distinct nodes, re-scoring spread after each pick
//     (ModeCount), or every node that fits (ModeDaemon). A ModeCount request that cannot
//     be met in full places nothing and returns a *PlacementError.
package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Node states as the node lifecycle controller records them.
const (
	StateReady    = "ready"
	StateDraining = "draining"
	StateLost     = "lost"
)

// Reasons the built-in filters give for leaving a node out. Constraints give their own.
const (
	ReasonNotSchedulable  = "not schedulable"
	ReasonLost            = "node lost"
	ReasonDraining        = "draining"
	ReasonRuntimeMismatch = "runtime version mismatch"
	ReasonMemory          = "insufficient memory"
	ReasonCPU             = "insufficient cpu"
	ReasonInstances       = "instance limit reached"
)

// Weights of the built-in scores. A Preference weighs its own Weight(); each weight
// counts as its absolute value when the weighted scores are averaged to [0,1].
const (
	ResourceWeight = 1.0
	SpreadWeight   = 1.0
	// StickinessBonus is added to a Current node's averaged score, which lies in [0,1],
	// so a node that already holds the deployment outranks every node that does not:
	// a deployment moves only when a node stops fitting, never to gain a little score.
	StickinessBonus = 1.0
)

// Resources is an amount of what a node offers and a placement reserves.
type Resources struct {
	MemoryBytes int64
	MilliCPU    int64
	Instances   int
}

// Node is what the scheduler knows of one agent.
type Node struct {
	Name           string
	Labels         map[string]string // region, zone, tier, cost_tier ...
	Capacity       Resources
	Allocated      Resources // reserved by the assignments the node already holds
	Schedulable    bool      // false when cordoned or draining
	State          string    // StateReady, StateDraining, StateLost
	RuntimeVersion string    // the agent's runtime/ABI version, e.g. "1"
}

// Mode says how many nodes a request wants.
type Mode int

const (
	// ModeCount places on Request.Count distinct nodes, or on none.
	ModeCount Mode = iota
	// ModeDaemon places on every node that fits.
	ModeDaemon
)

func (m Mode) String() string {
	switch m {
	case ModeCount:
		return "count"
	case ModeDaemon:
		return "daemon"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Strategy is the direction of the resource score.
type Strategy int

const (
	// BinPack prefers fuller nodes, leaving whole nodes free for large placements
	// (Nomad's default).
	BinPack Strategy = iota
	// Spread prefers emptier nodes, trading density for headroom.
	Spread
)

func (s Strategy) String() string {
	switch s {
	case BinPack:
		return "binpack"
	case Spread:
		return "spread"
	}
	return "Strategy(" + strconv.Itoa(int(s)) + ")"
}

// Request is one deployment's placement problem.
type Request struct {
	Deployment string // id, used in messages only
	Mode       Mode
	Count      int // nodes wanted in ModeCount; 0 places nothing
	// PerNode is what one placement reserves on its node. A resource it leaves at zero
	// is not checked against the node's capacity.
	PerNode     Resources
	Constraints []Constraint // hard filters, applied in order
	Preferences []Preference // soft scores, weighted
	// Spread is the node label whose values the placements spread across, e.g. "zone";
	// "" spreads nothing. Ignored in ModeDaemon, which takes every node anyway.
	Spread   string
	Strategy Strategy
	// RequiredRuntime is the runtime version a node must run: one version, or several
	// separated by commas ("1,2"). "" accepts any.
	RequiredRuntime string
	// Current names the nodes that hold this deployment now. Those that still fit are
	// kept ahead of any other node (see StickinessBonus); those that do not are replaced.
	Current []string
	// CurrentPerNode is what each placement in Current already holds inside its node's
	// Allocated (the deployment's previous PerNode). It is given back before a Current
	// node is checked, so a kept placement is not counted twice. Zero when the caller's
	// Allocated leaves this deployment out.
	CurrentPerNode Resources
	// SampleSize caps how many fitting nodes are scored in ModeCount: 0 means the
	// default, max(50, 10% of the fitting nodes); negative scores them all. Never fewer
	// than Count; Current nodes that fit are scored on top.
	SampleSize int
	// Seed chooses the sample. The same seed and nodes choose the same sample.
	Seed uint64
}

// Placement is one chosen node.
type Placement struct {
	Node    string
	Current bool // the node already held the deployment
	Score   Score
}

// Score is why a node was chosen. Each part lies in [0,1].
type Score struct {
	// Total ranks the nodes: the weighted mean of Resource, Spread and Preferences,
	// plus Stickiness. Ties go to Current nodes, then to the lower name.
	Total    float64
	Resource float64 // after this placement; higher is fuller for BinPack, emptier for Spread
	// Spread is 1 in the label values with the fewest placements of this deployment so
	// far and 0 in those with the most (and on nodes without the label); always 0 when
	// the request does not spread, in which case it carries no weight.
	Spread      float64
	Preferences []PreferenceScore
	Stickiness  float64 // StickinessBonus for a Current node, else 0
}

// PreferenceScore is one Preference's verdict on one node.
type PreferenceScore struct {
	Name   string
	Weight float64
	Score  float64 // clamped to [0,1]
}

// Result is a decision and its explanation.
type Result struct {
	// Placements are the chosen nodes: in ModeCount in the order they were picked
	// (best first), in ModeDaemon sorted by name. Empty whenever Place returns an error.
	Placements []Placement
	// Rejected counts the nodes left out, by reason. Each node counts once, for the
	// first filter it failed.
	Rejected map[string]int
	// Explanation sums up the filter, e.g. "2/12 nodes: 9 region mismatch,
	// 1 insufficient memory": fitting/all nodes, then the reasons by count, most first.
	Explanation string
	Feasible    int // nodes that passed every filter
	Scored      int // nodes scored: the sample plus the Current nodes that fit
}

// ErrInvalidRequest is wrapped by the errors Place returns for a malformed request or
// node list: a caller's bug, not a shortage of nodes.
var ErrInvalidRequest = errors.New("invalid placement request")

// PlacementError says that too few nodes fit. Nothing was placed.
type PlacementError struct {
	Deployment string
	Need       int    // nodes needed: Count, or 1 in ModeDaemon
	Result     Result // the filter's counts and Explanation; no Placements
}

func (e *PlacementError) Error() string {
	var b strings.Builder
	b.WriteString("place ")
	b.WriteString(e.Deployment)
	b.WriteString(": need ")
	if e.Need == 1 {
		b.WriteString("1 node")
	} else {
		b.WriteString(strconv.Itoa(e.Need))
		b.WriteString(" nodes")
	}
	b.WriteString(", ")
	writeSummary(&b, e.Result.Feasible, e.Result.Feasible+sumCounts(e.Result.Rejected), " feasible", e.Result.Rejected)
	return b.String()
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// Place chooses nodes for req among nodes. It returns a *PlacementError when fewer
// nodes fit than the request needs, and an error wrapping ErrInvalidRequest when the
// request or a node is malformed (a nil node, a negative count or resource, an unknown
// mode or strategy, a nil constraint or preference, a weight that is not finite, or two
// chosen nodes with the same name).
func Place(nodes []*Node, req Request) (Result, error) {
	if err := validate(&req); err != nil {
		return Result{}, err
	}
	f := newFilter(&req)
	var (
		tally tally
		// Feasible nodes by index: Current ones apart, as they skip the sample.
		kept   []int32
		others = make([]int32, 0, len(nodes))
	)
	for i, n := range nodes {
		if n == nil {
			return Result{}, fmt.Errorf("place %s: nodes[%d] is nil: %w", req.Deployment, i, ErrInvalidRequest)
		}
		switch reason, isCurrent := f.check(n); {
		case reason != "":
			tally.add(reason)
		case isCurrent:
			kept = append(kept, int32(i))
		default:
			others = append(others, int32(i))
		}
	}

	res := Result{
		Feasible: len(kept) + len(others),
		Rejected: tally.counts(),
	}
	res.Explanation = explain(res.Feasible, len(nodes), res.Rejected)

	need := req.Count
	if req.Mode == ModeDaemon {
		need = 1
	}
	if res.Feasible < need {
		return res, &PlacementError{Deployment: req.Deployment, Need: need, Result: res}
	}

	var err error
	if req.Mode == ModeDaemon {
		err = placeDaemon(nodes, &req, kept, others, &res)
	} else {
		err = placeCount(nodes, &req, kept, others, &res)
	}
	if err != nil {
		return Result{Rejected: res.Rejected, Explanation: res.Explanation, Feasible: res.Feasible}, err
	}
	return res, nil
}

func validate(req *Request) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("place %s: %s: %w", req.Deployment, fmt.Sprintf(format, args...), ErrInvalidRequest)
	}
	switch req.Mode {
	case ModeCount, ModeDaemon:
	default:
		return bad("unknown mode %d: use ModeCount or ModeDaemon", int(req.Mode))
	}
	switch req.Strategy {
	case BinPack, Spread:
	default:
		return bad("unknown strategy %d: use BinPack or Spread", int(req.Strategy))
	}
	if req.Mode == ModeCount && req.Count < 0 {
		return bad("count %d is negative", req.Count)
	}
	if r := req.PerNode; r.MemoryBytes < 0 || r.MilliCPU < 0 || r.Instances < 0 {
		return bad("per-node resources %+v: none may be negative", r)
	}
	if r := req.CurrentPerNode; r.MemoryBytes < 0 || r.MilliCPU < 0 || r.Instances < 0 {
		return bad("current per-node resources %+v: none may be negative", r)
	}
	for i, c := range req.Constraints {
		if c == nil {
			return bad("constraints[%d] is nil", i)
		}
	}
	for i, p := range req.Preferences {
		if p == nil {
			return bad("preferences[%d] is nil", i)
		}
		if w := p.Weight(); math.IsNaN(w) || math.IsInf(w, 0) {
			return bad("preference %q: weight %v is not a finite number", p.Name(), w)
		}
	}
	return nil
}

// filter is the feasibility check, with the request's parts it needs prepared once.
type filter struct {
	anyRuntime  bool
	runtime     string   // the one runtime allowed, when only one is
	runtimes    []string // the runtimes allowed, when several are
	constraints []Constraint
	current     nameSet
	want, held  Resources // PerNode, CurrentPerNode
}

func newFilter(req *Request) *filter {
	f := &filter{
		anyRuntime:  req.RequiredRuntime == "",
		constraints: req.Constraints,
		current:     newNameSet(req.Current),
		want:        req.PerNode,
		held:        req.CurrentPerNode,
	}
	if !f.anyRuntime {
		f.runtimes = strings.Split(req.RequiredRuntime, ",")
		for i := range f.runtimes {
			f.runtimes[i] = strings.TrimSpace(f.runtimes[i])
		}
		if len(f.runtimes) == 1 {
			f.runtime, f.runtimes = f.runtimes[0], nil
		}
	}
	return f
}

// check returns why n does not fit, or "" and whether n is in Current. The order of
// the checks is the order of precedence of the reasons.
func (f *filter) check(n *Node) (reason string, isCurrent bool) {
	switch {
	case n.State == StateLost:
		return ReasonLost, false
	case n.State == StateDraining:
		return ReasonDraining, false
	case n.State != StateReady || !n.Schedulable:
		return ReasonNotSchedulable, false
	}
	if !f.anyRuntime && !f.runtimeAllowed(n.RuntimeVersion) {
		return ReasonRuntimeMismatch, false
	}
	for _, c := range f.constraints {
		if ok, reason := c.Match(n); !ok {
			if reason == "" {
				reason = c.Name() + " not met"
			}
			return reason, false
		}
	}
	isCurrent = f.current.has(n.Name)
	alloc := n.Allocated
	if isCurrent {
		alloc = giveBack(alloc, f.held)
	}
	return fitReason(n.Capacity, alloc, f.want), isCurrent
}

func (f *filter) runtimeAllowed(v string) bool {
	if f.runtimes == nil {
		return v == f.runtime
	}
	return slices.Contains(f.runtimes, v)
}

// allocated is what n holds besides this deployment's own placement.
func allocated(n *Node, isCurrent bool, req *Request) Resources {
	if isCurrent {
		return giveBack(n.Allocated, req.CurrentPerNode)
	}
	return n.Allocated
}

// giveBack is alloc less held, a reservation it includes.
func giveBack(alloc, held Resources) Resources {
	return Resources{
		MemoryBytes: max(alloc.MemoryBytes-held.MemoryBytes, 0),
		MilliCPU:    max(alloc.MilliCPU-held.MilliCPU, 0),
		Instances:   max(alloc.Instances-held.Instances, 0),
	}
}

func fitReason(capacity, alloc, want Resources) string {
	if want.MemoryBytes > 0 && !fits(capacity.MemoryBytes, alloc.MemoryBytes, want.MemoryBytes) {
		return ReasonMemory
	}
	if want.MilliCPU > 0 && !fits(capacity.MilliCPU, alloc.MilliCPU, want.MilliCPU) {
		return ReasonCPU
	}
	if want.Instances > 0 && !fits(int64(capacity.Instances), int64(alloc.Instances), int64(want.Instances)) {
		return ReasonInstances
	}
	return ""
}

// fits reports whether alloc+want ≤ capacity, without overflowing.
func fits(capacity, alloc, want int64) bool {
	alloc = max(alloc, 0)
	return alloc <= capacity && want <= capacity-alloc
}

// resourceScore is Nomad's fitness curve (ScoreFitBinPack) averaged over the resources
// the node declares: 10^free grows fast as a node empties, so nearly-full nodes are told
// apart more finely than nearly-empty ones.
func resourceScore(capacity, alloc, want Resources, s Strategy) float64 {
	var sum float64
	var dims int
	add := func(capacity, used int64) {
		if capacity <= 0 {
			return
		}
		free := float64(capacity-min(used, capacity)) / float64(capacity)
		sum += (pow10(free) - 1) / 9
		dims++
	}
	add(capacity.MemoryBytes, sat(alloc.MemoryBytes, want.MemoryBytes))
	add(capacity.MilliCPU, sat(alloc.MilliCPU, want.MilliCPU))
	add(int64(capacity.Instances), sat(int64(alloc.Instances), int64(want.Instances)))
	if dims == 0 {
		return 0
	}
	emptiness := min(max(sum/float64(dims), 0), 1)
	if s == Spread {
		return emptiness
	}
	return 1 - emptiness
}

// pow10 is 10^x for x in [0,1], interpolated from a table: math.Exp per resource per
// node was a tenth of a daemon placement's time, and scores need no more than six digits.
func pow10(x float64) float64 {
	if !(x > 0) {
		return 1
	}
	f := x * pow10Steps
	i := int(f)
	if i >= pow10Steps {
		return pow10Table[pow10Steps]
	}
	return pow10Table[i] + (pow10Table[i+1]-pow10Table[i])*(f-float64(i))
}

const pow10Steps = 1024

var pow10Table = func() (t [pow10Steps + 1]float64) {
	for i := range t {
		t[i] = math.Pow(10, float64(i)/pow10Steps)
	}
	return t
}()

// sat adds two non-negative amounts, saturating instead of overflowing.
func sat(a, b int64) int64 {
	a = max(a, 0)
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func explain(feasible, total int, rejected map[string]int) string {
	var b strings.Builder
	writeSummary(&b, feasible, total, " nodes", rejected)
	return b.String()
}

// writeSummary writes "feasible/total<noun>: n reason, n reason", reasons by count,
// most first, then by name.
func writeSummary(b *strings.Builder, feasible, total int, noun string, rejected map[string]int) {
	b.WriteString(strconv.Itoa(feasible))
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(total))
	b.WriteString(noun)
	if len(rejected) == 0 {
		return
	}
	reasons := make([]string, 0, len(rejected))
	for r := range rejected {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		if c := cmp.Compare(rejected[b], rejected[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for i, r := range reasons {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(rejected[r]))
		b.WriteByte(' ')
		b.WriteString(r)
	}
}

// tally counts reasons without a map operation per node: a filter returns one of a few
// strings, usually the same constant, so a linear scan is shorter than hashing.
type tally []tallyEntry

type tallyEntry struct {
	reason string
	n      int
}

func (t *tally) add(reason string) {
	for i := range *t {
		if (*t)[i].reason == reason {
			(*t)[i].n++
			return
		}
	}
	*t = append(*t, tallyEntry{reason, 1})
}

func (t tally) counts() map[string]int {
	m := make(map[string]int, len(t))
	for _, e := range t {
		m[e.reason] = e.n
	}
	return m
}

// nameSet is Request.Current as a set; a short list is scanned rather than hashed.
type nameSet struct {
	list []string
	m    map[string]struct{}
}

func newNameSet(names []string) nameSet {
	if len(names) <= 8 {
		return nameSet{list: names}
	}
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return nameSet{m: m}
}

func (s nameSet) has(name string) bool {
	if s.m != nil {
		_, ok := s.m[name]
		return ok
	}
	for _, n := range s.list {
		if n == name {
			return true
		}
	}
	return false
}
