package slo

import (
	"fmt"
	"sort"
	"time"
)

// Counts are the good and total requests of one SLI over some span.
type Counts struct {
	Good, Total int64
}

// Bad is the number of requests that missed the SLI.
func (c Counts) Bad() int64 { return c.Total - c.Good }

// Series identifies one evaluated population of an SLO: an app's version in one scope
// member ("global", a region's name, a node's name).
type Series struct {
	App, Version string
	Scope        string
}

// Source is what the engine reads SLIs from; the control plane's SLI store implements
// it, and so does Intervals. It is the consumer's interface: the engine asks only for
// what it evaluates.
type Source interface {
	// Series lists the populations with data for spec in [from, to): its app (or the
	// apps its selector matches) by version, split by spec.Scope.Per and restricted to
	// spec.Scope.Nodes.
	Series(spec *Spec, from, to time.Time) []Series
	// Counts sums the SLI's good and total requests of one series over intervals that
	// end in (from, to].
	Counts(s Series, sli SLI, from, to time.Time) Counts
}

// BurnRate is how fast the budget burns: the error ratio divided by the budget, so 1
// spends the whole budget in exactly one SLO window. Zero when there were no requests.
// For display; alert conditions compare exactly with AtLeast.
func BurnRate(c Counts, objective Ratio) float64 {
	if c.Total <= 0 || c.Bad() <= 0 || objective.Num >= objective.Den {
		return 0
	}
	return float64(c.Bad()) * float64(objective.Den) / (float64(c.Total) * float64(objective.Den-objective.Num))
}

// AtLeast reports whether the burn rate of c against objective is at least factor,
// exactly: bad/total ÷ (1 − objective) ≥ factor, cross-multiplied into integers.
// No requests is no burn.
func AtLeast(c Counts, objective, factor Ratio) bool {
	if c.Total <= 0 || c.Good < 0 || c.Bad() <= 0 {
		return false
	}
	// bad·objDen·factorDen ≥ factorNum·(objDen−objNum)·total
	return cmp3(uint64(c.Bad()), objective.Den, factor.Den, factor.Num, objective.Den-objective.Num, uint64(c.Total)) >= 0
}

// BudgetReport is an SLO's error budget over its window for one series.
type BudgetReport struct {
	SLO    string
	Series Series
	Counts Counts
	// Allowed is how many bad requests the objective allows over Counts.Total.
	Allowed float64
	// Remaining is the unspent share of the budget: 1 at no errors, 0 when spent,
	// negative when overspent. 1 when there were no requests.
	Remaining float64
	// Burn is the burn rate over the whole window (1 − Remaining when there was traffic).
	Burn float64
}

// Budget computes spec's budget for one series over its window ending at now.
func Budget(spec *Spec, src Source, s Series, now time.Time) BudgetReport {
	c := src.Counts(s, spec.SLI, now.Add(-spec.Window), now)
	r := BudgetReport{SLO: spec.Name, Series: s, Counts: c, Remaining: 1}
	b := spec.Budget()
	r.Allowed = float64(c.Total) * b.Float()
	if c.Total > 0 {
		r.Burn = BurnRate(c, spec.Objective)
		r.Remaining = 1 - r.Burn
	}
	return r
}

// Budgets computes every spec's budget for every series its source reports over the
// window ending at now, in spec then series order.
func Budgets(specs []Spec, src Source, now time.Time) []BudgetReport {
	var out []BudgetReport
	for i := range specs {
		sp := &specs[i]
		series := src.Series(sp, now.Add(-sp.Window), now)
		sortSeries(series)
		for _, s := range series {
			out = append(out, Budget(sp, src, s, now))
		}
	}
	return out
}

func sortSeries(ss []Series) {
	sort.Slice(ss, func(i, j int) bool {
		a, b := ss[i], ss[j]
		if a.App != b.App {
			return a.App < b.App
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Scope < b.Scope
	})
}

// Intervals is an in-memory Source over interval counts of any length: each Add records
// the good and total requests of one interval ending at a time. It keeps running sums,
// so Counts over any window costs two binary searches. It is what tests and the
// benchmark use, and a reference for the control plane's store. Not safe for
// concurrent use.
type Intervals struct {
	series map[Series]*seriesData
	byApp  map[string][]Series // in the order first added
	// Match decides which series a spec covers; nil matches series whose App is the
	// spec's App (selectors and node populations need the caller's labels).
	Match func(spec *Spec, s Series) bool
}

type seriesData struct {
	scope ScopeKind
	slis  map[SLI]*cumulative
}

// cumulative holds interval end times in ascending order and running sums up to and
// including each one.
type cumulative struct {
	ends        []int64 // unix nanoseconds
	good, total []int64
}

// NewIntervals returns an empty store.
func NewIntervals() *Intervals {
	return &Intervals{series: map[Series]*seriesData{}, byApp: map[string][]Series{}}
}

// Add records one interval of s ending at end. Intervals usually arrive in order; one
// that arrives late (a backfill) is merged in place. Adding the same end twice adds
// the counts. Counts with Good < 0, Good > Total or Total above 2^53 (no interval
// holds that many requests; the bound keeps running sums far from overflow) are
// refused and nothing is recorded.
func (iv *Intervals) Add(s Series, per ScopeKind, sli SLI, end time.Time, c Counts) error {
	if c.Good < 0 || c.Good > c.Total || c.Total > 1<<53 {
		return fmt.Errorf("add interval of %s/%s/%s ending %s: counts good=%d total=%d are not 0 ≤ good ≤ total ≤ 2^53", s.App, s.Version, s.Scope, end.Format(time.RFC3339), c.Good, c.Total)
	}
	sd := iv.series[s]
	if sd == nil {
		sd = &seriesData{scope: per, slis: map[SLI]*cumulative{}}
		iv.series[s] = sd
		iv.byApp[s.App] = append(iv.byApp[s.App], s)
	}
	cu := sd.slis[sli]
	if cu == nil {
		cu = &cumulative{}
		sd.slis[sli] = cu
	}
	e := end.UnixNano()
	n := len(cu.ends)
	if n == 0 || cu.ends[n-1] < e {
		g, t := c.Good, c.Total
		if n > 0 {
			g += cu.good[n-1]
			t += cu.total[n-1]
		}
		cu.ends, cu.good, cu.total = append(cu.ends, e), append(cu.good, g), append(cu.total, t)
		return nil
	}
	i := sort.Search(n, func(i int) bool { return cu.ends[i] >= e })
	if cu.ends[i] != e {
		prevG, prevT := int64(0), int64(0)
		if i > 0 {
			prevG, prevT = cu.good[i-1], cu.total[i-1]
		}
		cu.ends = append(cu.ends[:i], append([]int64{e}, cu.ends[i:]...)...)
		cu.good = append(cu.good[:i], append([]int64{prevG}, cu.good[i:]...)...)
		cu.total = append(cu.total[:i], append([]int64{prevT}, cu.total[i:]...)...)
	}
	for j := i; j < len(cu.ends); j++ {
		cu.good[j] += c.Good
		cu.total[j] += c.Total
	}
	return nil
}

// Series implements Source: every series matching spec with an interval ending in
// (from, to] of the spec's SLI and scope kind.
func (iv *Intervals) Series(spec *Spec, from, to time.Time) []Series {
	var out []Series
	candidates := iv.byApp[spec.App]
	if iv.Match != nil {
		candidates = nil
		for _, ss := range iv.byApp {
			candidates = append(candidates, ss...)
		}
	}
	for _, s := range candidates {
		if iv.series[s].scope != spec.Scope.Per || iv.Match != nil && !iv.Match(spec, s) {
			continue
		}
		if c := iv.Counts(s, spec.SLI, from, to); c.Total > 0 {
			out = append(out, s)
		}
	}
	return out
}

// Counts implements Source.
func (iv *Intervals) Counts(s Series, sli SLI, from, to time.Time) Counts {
	sd := iv.series[s]
	if sd == nil {
		return Counts{}
	}
	cu := sd.slis[sli]
	if cu == nil {
		return Counts{}
	}
	at := func(t time.Time) (int64, int64) { // sums over intervals ending at or before t
		e := t.UnixNano()
		i := sort.Search(len(cu.ends), func(i int) bool { return cu.ends[i] > e })
		if i == 0 {
			return 0, 0
		}
		return cu.good[i-1], cu.total[i-1]
	}
	g1, t1 := at(from)
	g2, t2 := at(to)
	return Counts{Good: g2 - g1, Total: t2 - t1}
}
