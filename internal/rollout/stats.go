package rollout

import (
	"iter"
	"math"
)

// NormalSF is the standard normal survival function, P(Z > z).
func NormalSF(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

// TwoProportionZ tests whether proportion x1/n1 exceeds x2/n2 by more than margin,
// H0: p1 − p2 ≤ margin against H1: p1 − p2 > margin. It returns the z statistic and the
// one-sided p-value, with the unpooled standard error
// √(p1(1−p1)/n1 + p2(1−p2)/n2): the pooled one assumes p1 = p2, which a non-zero
// margin contradicts. When both proportions are 0 or 1 the error is 0 and the answer
// is exact: p = 0 if the difference exceeds the margin, else 1. n1 or n2 of 0 gives
// p = 1 (no evidence).
func TwoProportionZ(x1, n1, x2, n2 uint64, margin float64) (z, p float64) {
	if n1 == 0 || n2 == 0 {
		return 0, 1
	}
	p1, p2 := float64(x1)/float64(n1), float64(x2)/float64(n2)
	d := p1 - p2 - margin
	se := math.Sqrt(p1*(1-p1)/float64(n1) + p2*(1-p2)/float64(n2))
	if se == 0 {
		if d > 0 {
			return math.Inf(1), 0
		}
		return math.Inf(-1), 1
	}
	z = d / se
	return z, NormalSF(z)
}

// OneProportionZ tests whether x/n exceeds limit (H1: p > limit), with the standard
// error of the limit, √(limit(1−limit)/n), the score test. limit must be in (0, 1);
// at 0 any event exceeds it exactly (p = 0), at 1 nothing can (p = 1).
func OneProportionZ(x, n uint64, limit float64) (z, p float64) {
	if n == 0 {
		return 0, 1
	}
	ph := float64(x) / float64(n)
	if limit <= 0 || limit >= 1 {
		if ph > limit {
			return math.Inf(1), 0
		}
		return math.Inf(-1), 1
	}
	z = (ph - limit) / math.Sqrt(limit*(1-limit)/float64(n))
	return z, NormalSF(z)
}

// MannWhitney is the result of a Mann–Whitney U test of sample A against sample B.
type MannWhitney struct {
	NA, NB uint64
	// U counts the pairs (a, b) with a > b, ties counting one half.
	U float64
	// Z is the normal approximation's statistic with the tie correction and a
	// continuity correction of ½; P is the one-sided p-value of A being
	// stochastically greater than B (P(a > b) > ½).
	Z, P float64
	// Effect is U / (NA·NB), the probability that a random a exceeds a random b
	// (ties ½): 0.5 means no shift.
	Effect float64
}

// MannWhitneyU runs the test on two histograms over the same ordered bins, each
// given as (bin, count) in increasing bin order, such as two sli.Sketch's Buckets.
// Values in one bin are ties. It walks the bins once: O(bins of A + bins of B), never
// the values, so a window of millions of requests costs what a few hundred buckets do.
func MannWhitneyU(a, b iter.Seq2[int, uint64]) MannWhitney {
	// Collected into slices, then merged: ranging over a sequence is a plain call,
	// while pulling two in step (iter.Pull2) switches coroutines per bin, which
	// measured three times slower.
	type bin struct {
		i int
		c uint64
	}
	collect := func(seq iter.Seq2[int, uint64]) []bin {
		out := make([]bin, 0, 256)
		for i, c := range seq {
			out = append(out, bin{i, c})
		}
		return out
	}
	as, bs := collect(a), collect(b)
	var r MannWhitney
	var bBelow float64 // B values in bins below the current one
	var ties float64   // Σ (t³ − t) over bins, t the bin's combined count
	for ia, ib := 0, 0; ia < len(as) || ib < len(bs); {
		var ca, cb uint64
		switch {
		case ib == len(bs) || (ia < len(as) && as[ia].i < bs[ib].i):
			ca = as[ia].c
			ia++
		case ia == len(as) || bs[ib].i < as[ia].i:
			cb = bs[ib].c
			ib++
		default:
			ca, cb = as[ia].c, bs[ib].c
			ia++
			ib++
		}
		fa, fb := float64(ca), float64(cb)
		r.U += fa * (bBelow + fb/2)
		bBelow += fb
		r.NA += ca
		r.NB += cb
		t := fa + fb
		ties += t*t*t - t
	}
	if r.NA == 0 || r.NB == 0 {
		r.Effect, r.P = 0.5, 1
		return r
	}
	na, nb := float64(r.NA), float64(r.NB)
	n := na + nb
	r.Effect = r.U / (na * nb)
	mean := na * nb / 2
	variance := na * nb / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance <= 0 {
		// Every value tied: no evidence of a shift either way.
		r.P = 1
		return r
	}
	d := r.U - mean
	// Continuity correction toward the mean.
	d = math.Copysign(math.Max(math.Abs(d)-0.5, 0), d)
	r.Z = d / math.Sqrt(variance)
	r.P = NormalSF(r.Z)
	return r
}
