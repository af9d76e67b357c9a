package promsource

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// bucket is one cumulative histogram bucket: count requests took at most le seconds.
type bucket struct {
	le    float64
	count float64
}

// maxHistogramBuckets bounds the `le` series of one histogram; Fermion's has 15.
const maxHistogramBuckets = 1000

// histogramBuckets reads a `sum by (le)` vector: one series per bound, each with a
// parseable `le` label, +Inf among them when there are any.
func histogramBuckets(vec []series) ([]bucket, error) {
	if len(vec) == 0 {
		return nil, nil
	}
	if len(vec) > maxHistogramBuckets {
		return nil, fmt.Errorf("returned %d series; a histogram has one per bucket bound (aggregate with sum by (le))", len(vec))
	}
	bs := make([]bucket, 0, len(vec))
	seen := map[float64]bool{}
	for _, s := range vec {
		raw, ok := s.Metric["le"]
		if !ok {
			return nil, fmt.Errorf("returned a series without an le label (%v); return the histogram's buckets, such as sum by (le) (increase(…_bucket[…]))", s.Metric)
		}
		le, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(le) || le < 0 {
			return nil, fmt.Errorf("returned le=%q, not a bucket bound", raw)
		}
		if seen[le] {
			return nil, fmt.Errorf("returned le=%q twice; aggregate the other labels away with sum by (le)", raw)
		}
		seen[le] = true
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			return nil, fmt.Errorf("returned %v for le=%q; return counts", s.Value, raw)
		}
		bs = append(bs, bucket{le: le, count: max(s.Value, 0)})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if !math.IsInf(bs[len(bs)-1].le, 1) {
		return nil, fmt.Errorf("returned no le=\"+Inf\" bucket; select every bucket of the histogram")
	}
	return bs, nil
}

// maxPointsPerBucket is how many points one Prometheus bucket's count is spread over.
// Fermion's buckets are 2–2.5× wide, some 40–90 of the sketch's 1 % buckets; 64 points
// put a quantile within about 1 % of where linear interpolation puts it.
const maxPointsPerBucket = 64

// sketchOf turns cumulative bucket counts into a sketch. Each bucket's count (rounded:
// increase() extrapolates to fractions) is spread evenly over the bucket (lo, hi], the
// first bucket starting at 0, which is histogram_quantile's linear interpolation; so
// the sketch's quantiles agree with what Prometheus reports for the same window. Counts
// above the highest finite bound are recorded at that bound, as histogram_quantile
// reports them. A count that falls from one bound to the next (extrapolation over
// series scraped at different moments) counts as no requests in that bucket.
func sketchOf(bs []bucket) *sli.Sketch {
	if len(bs) == 0 {
		return nil
	}
	sk := &sli.Sketch{}
	var prev uint64
	lo := 0.0
	for i, b := range bs {
		cum := uint64(math.Round(min(b.count, 1e15)))
		if cum <= prev {
			if !math.IsInf(b.le, 1) {
				lo = b.le
			}
			continue
		}
		n := cum - prev
		prev = cum
		hi := b.le
		if math.IsInf(hi, 1) {
			// Nothing is known above the last finite bound (or, with no finite bound,
			// at all): record it there.
			at := lo
			if i == 0 {
				at = 0
			}
			sk.AddN(seconds(at), n)
			continue
		}
		spread(sk, lo, hi, n)
		lo = hi
	}
	return sk
}

// spread adds n values evenly over (lo, hi]: k points at the midpoints of k equal
// parts, the counts shared out so they sum to n.
func spread(sk *sli.Sketch, lo, hi float64, n uint64) {
	k := min(n, maxPointsPerBucket)
	for j := range k {
		c := (j+1)*n/k - j*n/k
		x := lo + (hi-lo)*(float64(j)+0.5)/float64(k)
		sk.AddN(seconds(x), c)
	}
}

func seconds(s float64) time.Duration {
	return time.Duration(min(s, float64(math.MaxInt64)/1e9) * 1e9)
}
