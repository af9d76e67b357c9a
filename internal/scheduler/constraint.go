package scheduler

import (
	"slices"
	"strconv"
	"strings"
)

// Constraint is a hard filter: a node that does not match is left out, and reason
// (e.g. "region mismatch") is counted in Result.Rejected. Reasons should be few and
// stable, not per node, so that the explanation groups them. Match is called once per
// node per Place call and must not modify the node.
type Constraint interface {
	Name() string
	Match(n *Node) (ok bool, reason string)
}

// Preference is a soft score in [0,1] (values outside are clamped) weighed by Weight:
// a negative weight steers placements away from the nodes it scores high. Score is
// called once per scored node and must not modify the node.
type Preference interface {
	Name() string
	Weight() float64
	Score(n *Node) float64
}

// LabelSelector matches the nodes whose labels equal every key=value in expr. A node
// failing it is rejected for "<key> mismatch", naming the first failing key in sorted
// order. An empty selector matches every node.
func LabelSelector(expr map[string]string) Constraint {
	s := &labelSelector{}
	for k := range expr {
		s.keys = append(s.keys, k)
	}
	slices.Sort(s.keys)
	parts := make([]string, len(s.keys))
	for i, k := range s.keys {
		s.values = append(s.values, expr[k])
		s.reasons = append(s.reasons, k+" mismatch")
		parts[i] = k + "=" + expr[k]
	}
	s.name = "labels(" + strings.Join(parts, ",") + ")"
	return s
}

type labelSelector struct {
	name    string
	keys    []string
	values  []string
	reasons []string // made once, so rejecting a node allocates nothing
}

func (s *labelSelector) Name() string { return s.name }

func (s *labelSelector) Match(n *Node) (bool, string) {
	for i, k := range s.keys {
		if v, ok := n.Labels[k]; !ok || v != s.values[i] {
			return false, s.reasons[i]
		}
	}
	return true, ""
}

// LabelPreference scores 1 the nodes whose label key equals value and 0 the others,
// e.g. LabelPreference("cost_tier", "low", 2).
func LabelPreference(key, value string, weight float64) Preference {
	return &labelPreference{
		name:   "label(" + key + "=" + value + ")*" + strconv.FormatFloat(weight, 'g', -1, 64),
		key:    key,
		value:  value,
		weight: weight,
	}
}

type labelPreference struct {
	name, key, value string
	weight           float64
}

func (p *labelPreference) Name() string    { return p.name }
func (p *labelPreference) Weight() float64 { return p.weight }

func (p *labelPreference) Score(n *Node) float64 {
	if v, ok := n.Labels[p.key]; ok && v == p.value {
		return 1
	}
	return 0
}
