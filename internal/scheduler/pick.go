package scheduler

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// candidate is a feasible node being scored.
type candidate struct {
	node    *Node
	zone    int32 // index of its Spread label value; -1 without the label
	current bool
	picked  bool
	fixed   float64 // the weighted parts that do not change as picks are made
	res     float64 // resource score
	prefs   int     // offset of its preference scores in scorer.prefScores
}

// scorer holds what every node's score needs, computed once per call.
type scorer struct {
	req        *Request
	spreading  bool
	weightSum  float64           // sum of |weight| over the parts that count
	prefShift  float64           // sum of |weight| of negative preferences, to lift the sum to ≥ 0
	prefs      []PreferenceScore // names and weights, asked once per call
	prefScores []float64
}

func newScorer(req *Request, spreading bool) *scorer {
	s := &scorer{req: req, spreading: spreading, weightSum: ResourceWeight}
	if spreading {
		s.weightSum += SpreadWeight
	}
	s.prefs = make([]PreferenceScore, len(req.Preferences))
	for i, p := range req.Preferences {
		w := p.Weight()
		s.prefs[i] = PreferenceScore{Name: p.Name(), Weight: w}
		s.weightSum += math.Abs(w)
		if w < 0 {
			s.prefShift -= w
		}
	}
	return s
}

// score fills c's fixed parts.
func (s *scorer) score(c *candidate) {
	n := c.node
	c.res = resourceScore(n.Capacity, allocated(n, c.current, s.req), s.req.PerNode, s.req.Strategy)
	c.fixed = ResourceWeight*c.res + s.prefShift
	c.prefs = len(s.prefScores)
	for i, p := range s.req.Preferences {
		v := clamp01(p.Score(n))
		s.prefScores = append(s.prefScores, v)
		c.fixed += s.prefs[i].Weight * v
	}
}

// total is c's rank key given its spread score.
func (s *scorer) total(c *candidate, spread float64) float64 {
	t := c.fixed
	if s.spreading {
		t += SpreadWeight * spread
	}
	t /= s.weightSum
	if c.current {
		t += StickinessBonus
	}
	return t
}

func clamp01(v float64) float64 {
	if !(v > 0) { // also NaN
		return 0
	}
	return min(v, 1)
}

// better reports whether a ranks before b: higher total, then Current, then lower name.
func better(a *candidate, at float64, b *candidate, bt float64) bool {
	if at != bt {
		return at > bt
	}
	if a.current != b.current {
		return a.current
	}
	return a.node.Name < b.node.Name
}

// fill writes c's placement to p; prefs receives its preference scores.
func (s *scorer) fill(p *Placement, c *candidate, total, spread float64, prefs []PreferenceScore) {
	*p = Placement{Node: c.node.Name, Current: c.current, Score: Score{Total: total, Resource: c.res}}
	if s.spreading {
		p.Score.Spread = spread
	}
	if c.current {
		p.Score.Stickiness = StickinessBonus
	}
	if len(prefs) > 0 {
		copy(prefs, s.prefs)
		for i := range prefs {
			prefs[i].Score = s.prefScores[c.prefs+i]
		}
		p.Score.Preferences = prefs
	}
}

func placeCount(nodes []*Node, req *Request, kept, others []int32, res *Result) error {
	need := req.Count
	if need == 0 {
		return nil
	}
	// Current nodes outrank all others, so others are scored only to fill the rest.
	var sample []int32
	if needOthers := need - len(kept); needOthers > 0 {
		limit := req.SampleSize
		if limit == 0 {
			limit = max(50, (len(kept)+len(others)+9)/10)
		}
		if limit < 0 {
			sample = others
		} else {
			sample = sampleNodes(nodes, others, max(limit-len(kept), needOthers), req.Seed)
		}
	}

	cands := make([]candidate, 0, len(kept)+len(sample))
	for _, i := range kept {
		cands = append(cands, candidate{node: nodes[i], current: true, zone: -1})
	}
	for _, i := range sample {
		cands = append(cands, candidate{node: nodes[i], zone: -1})
	}
	res.Scored = len(cands)

	s := newScorer(req, req.Spread != "")
	s.prefScores = make([]float64, 0, len(cands)*len(req.Preferences))
	var zoneCount []int // placements so far per Spread label value
	if s.spreading {
		zones := make(map[string]int32)
		for i := range cands {
			v, ok := cands[i].node.Labels[req.Spread]
			if !ok {
				continue
			}
			z, ok := zones[v]
			if !ok {
				z = int32(len(zones))
				zones[v] = z
			}
			cands[i].zone = z
		}
		zoneCount = make([]int, len(zones))
	}
	for i := range cands {
		s.score(&cands[i])
	}

	picks := make([]Placement, 0, need)
	prefs := make([]PreferenceScore, need*len(req.Preferences))
	for len(picks) < need {
		lo, hi := spreadRange(zoneCount)
		best, bestTotal, bestSpread := -1, 0.0, 0.0
		for i := range cands {
			c := &cands[i]
			if c.picked {
				continue
			}
			spread := spreadScore(c.zone, zoneCount, lo, hi)
			t := s.total(c, spread)
			if best < 0 || better(c, t, &cands[best], bestTotal) {
				best, bestTotal, bestSpread = i, t, spread
			}
		}
		c := &cands[best]
		c.picked = true
		if c.zone >= 0 {
			zoneCount[c.zone]++
		}
		np := len(req.Preferences)
		k := len(picks) * np
		picks = picks[:len(picks)+1]
		s.fill(&picks[len(picks)-1], c, bestTotal, bestSpread, prefs[k:k+np:k+np])
	}
	if name, dup := duplicateName(picks); dup {
		return fmt.Errorf("place %s: two nodes are named %q: %w", req.Deployment, name, ErrInvalidRequest)
	}
	res.Placements = picks
	return nil
}

// spreadRange is the fewest and most placements in any label value.
func spreadRange(counts []int) (lo, hi int) {
	for i, n := range counts {
		if i == 0 || n < lo {
			lo = n
		}
		if n > hi {
			hi = n
		}
	}
	return lo, hi
}

// spreadScore is 1 in the emptiest label values, 0 in the fullest and on nodes without
// the label, linear in between: even spreading without targets, as Nomad's spread
// stanza does when it has none.
func spreadScore(zone int32, counts []int, lo, hi int) float64 {
	if zone < 0 {
		return 0
	}
	if hi == lo {
		return 1
	}
	return float64(hi-counts[zone]) / float64(hi-lo)
}

func placeDaemon(nodes []*Node, req *Request, kept, others []int32, res *Result) error {
	n := len(kept) + len(others)
	res.Scored = n
	s := newScorer(req, false)
	s.prefScores = make([]float64, 0, n*len(req.Preferences))
	picks := make([]Placement, 0, n)
	prefs := make([]PreferenceScore, n*len(req.Preferences))
	np := len(req.Preferences)
	add := func(i int32, current bool) {
		c := candidate{node: nodes[i], current: current, zone: -1}
		s.score(&c)
		k := len(picks) * np
		picks = picks[:len(picks)+1]
		s.fill(&picks[len(picks)-1], &c, s.total(&c, 0), 0, prefs[k:k+np:k+np])
	}
	for _, i := range kept {
		add(i, true)
	}
	for _, i := range others {
		add(i, false)
	}
	slices.SortFunc(picks, func(a, b Placement) int { return strings.Compare(a.Node, b.Node) })
	for i := 1; i < len(picks); i++ {
		if picks[i].Node == picks[i-1].Node {
			return fmt.Errorf("place %s: two nodes are named %q: %w", req.Deployment, picks[i].Node, ErrInvalidRequest)
		}
	}
	res.Placements = picks
	return nil
}

func duplicateName(ps []Placement) (string, bool) {
	if len(ps) <= 16 {
		for i := range ps {
			for j := i + 1; j < len(ps); j++ {
				if ps[i].Node == ps[j].Node {
					return ps[i].Node, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, len(ps))
	for _, p := range ps {
		if _, ok := seen[p.Node]; ok {
			return p.Node, true
		}
		seen[p.Node] = struct{}{}
	}
	return "", false
}
