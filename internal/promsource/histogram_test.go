package promsource

import (
	"math"
	"testing"
	"time"
)

// histogramQuantile is Prometheus's histogram_quantile over cumulative buckets: linear
// interpolation inside the bucket holding the rank, the first bucket from 0, and the
// highest finite bound for a rank in +Inf.
func histogramQuantile(q float64, bs []bucket) float64 {
	total := bs[len(bs)-1].count
	rank := q * total
	lo, prev := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank && b.count > prev {
			if math.IsInf(b.le, 1) {
				return lo
			}
			return lo + (b.le-lo)*(rank-prev)/(b.count-prev)
		}
		if !math.IsInf(b.le, 1) {
			lo = b.le
		}
		prev = b.count
	}
	return lo
}

func TestSketchOfMatchesHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		bs   []bucket
	}{
		{"one bucket", []bucket{{0.005, 0}, {0.01, 1000}, {inf, 1000}}},
		{"spread", []bucket{{0.001, 100}, {0.005, 600}, {0.01, 900}, {0.05, 990}, {0.1, 1000}, {inf, 1000}}},
		{"tail in +Inf", []bucket{{0.1, 900}, {1, 980}, {inf, 1000}}},
		{"Fermion's buckets", []bucket{{.0005, 5}, {.001, 40}, {.0025, 300}, {.005, 800}, {.01, 950}, {.025, 990}, {.05, 998}, {.1, 1000}, {.25, 1000}, {inf, 1000}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sk := sketchOf(tc.bs)
			if sk.Count() != uint64(tc.bs[len(tc.bs)-1].count) {
				t.Fatalf("count %d, want %v", sk.Count(), tc.bs[len(tc.bs)-1].count)
			}
			for _, q := range []float64{0.5, 0.9, 0.95, 0.99} {
				want := histogramQuantile(q, tc.bs)
				got := sk.Quantile(q).Seconds()
				// The sketch's 1 % accuracy, the 64 points per bucket, and the sketch's
				// rank (floor of q·(n−1)) against Prometheus's (q·n): a few per cent.
				if math.Abs(got-want) > 0.04*want+1e-6 {
					t.Errorf("q%v: sketch %v, histogram_quantile %v", q, time.Duration(got*1e9), time.Duration(want*1e9))
				}
			}
		})
	}
}

func TestSketchOfEdges(t *testing.T) {
	inf := math.Inf(1)
	if sketchOf(nil) != nil {
		t.Error("no buckets must give no sketch")
	}
	// Extrapolated counts can fall from one bound to the next: no negative bucket.
	sk := sketchOf([]bucket{{0.01, 10.4}, {0.1, 9.6}, {inf, 12}})
	if sk.Count() != 12 {
		t.Errorf("count %d, want 12 (10 + 0 + 2)", sk.Count())
	}
	// Only +Inf: everything recorded at 0, counted.
	if sk := sketchOf([]bucket{{inf, 7}}); sk.Count() != 7 || sk.Quantile(0.5) != 0 {
		t.Errorf("+Inf only: count %d, median %v", sk.Count(), sk.Quantile(0.5))
	}
	// Huge counts do not overflow the spreading.
	if sk := sketchOf([]bucket{{0.01, 1e15}, {inf, 1e15}}); sk.Count() != 1e15 {
		t.Errorf("count %d, want 1e15", sk.Count())
	}
}
