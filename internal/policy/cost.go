package policy

import (
	"strings"

	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
)

// DefaultCostLimit is the CEL cost one expression may spend in one evaluation, the
// same per-call limit Kubernetes sets for admission expressions. One unit is roughly
// one step (a comparison, a field read, a list element visited), so the limit bounds
// an evaluation to milliseconds whatever the input.
const DefaultCostLimit = 1_000_000

// sizeHints are the largest lists, maps and strings the compile-time cost estimate
// assumes, keyed by CEL field path (variable.field…, with "*" for any variable). An
// expression whose worst case under these sizes exceeds the cost limit is refused when
// compiled; an input larger than these is still evaluated, and stopped by the run-time
// limit (then failurePolicy decides).
var sizeHints = map[string]uint64{
	"artifact.imports":                      1024,
	"artifact.annotations":                  64,
	"manifest.slo":                          16,
	"node.allow.import_modules":             64,
	"node.allow.outbound_hosts":             256,
	"node.allow.env":                        256,
	"*.labels":                              64,
	"*.capabilities.env":                    64,
	"*.capabilities.allowed_outbound_hosts": 64,
	"*.capabilities.files":                  16,
}

const (
	defaultListHint   = 256  // a list with no hint above
	defaultStringHint = 256  // any string: digests, names, imports, label values, hosts
	longStringHint    = 4096 // annotation values
)

// sizeEstimator tells CEL's static cost estimate how large inputs may be.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	path := n.Path()
	t := n.Type()
	if len(path) == 0 || t == nil {
		return nil
	}
	switch t.Kind() {
	case types.StringKind, types.BytesKind:
		max := uint64(defaultStringHint)
		if len(path) >= 3 && path[len(path)-1] == "@values" && path[len(path)-2] == "annotations" {
			max = longStringHint
		}
		e := cost.RangedSizeEstimate(0, max)
		return &e
	case types.ListKind, types.MapKind:
		e := cost.RangedSizeEstimate(0, hintFor(path))
		return &e
	}
	return nil
}

// EstimateCallCost bounds the strings that conversions produce, which CEL leaves
// unbounded, so that building a message with string(int) does not look infinite.
func (sizeEstimator) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	switch overloadID {
	case overloads.IntToString, overloads.UintToString, overloads.DoubleToString, overloads.BoolToString:
		sz := cost.RangedSizeEstimate(0, 32)
		return cost.NewCallEstimate(cost.FixedCostEstimate(1), &sz)
	case overloads.DurationToString, overloads.TimestampToString:
		sz := cost.RangedSizeEstimate(0, 40)
		return cost.NewCallEstimate(cost.FixedCostEstimate(1), &sz)
	case "optional_value", "optional_orValue_value":
		// The value of labels.?tier and the like is an input value, no larger than
		// the largest hint; CEL would otherwise take it as unbounded.
		sz := cost.RangedSizeEstimate(0, longStringHint)
		return cost.NewCallEstimate(cost.FixedCostEstimate(1), &sz)
	}
	return nil
}

func hintFor(path []string) uint64 {
	p := strings.Join(path, ".")
	if h, ok := sizeHints[p]; ok {
		return h
	}
	if i := strings.IndexByte(p, '.'); i > 0 {
		if h, ok := sizeHints["*"+p[i:]]; ok {
			return h
		}
	}
	for k, h := range sizeHints {
		if strings.HasPrefix(k, "*.") && strings.HasSuffix(p, k[1:]) {
			return h
		}
	}
	return defaultListHint
}
