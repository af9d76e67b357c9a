package sli

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// distributions the property tests draw latencies from.
var distributions = []struct {
	name string
	draw func(r *rand.Rand) time.Duration
}{
	{"lognormal around 1ms", func(r *rand.Rand) time.Duration {
		return time.Duration(math.Exp(r.NormFloat64()*1.2) * float64(time.Millisecond))
	}},
	{"uniform 1µs to 10s", func(r *rand.Rand) time.Duration {
		return MinTrackable + time.Duration(r.Int64N(int64(10*time.Second)))
	}},
	{"bimodal warm and cold", func(r *rand.Rand) time.Duration {
		if r.IntN(20) == 0 {
			return 40*time.Millisecond + time.Duration(r.Int64N(int64(20*time.Millisecond)))
		}
		return 300*time.Microsecond + time.Duration(r.Int64N(int64(200*time.Microsecond)))
	}},
	{"few distinct values", func(r *rand.Rand) time.Duration {
		return time.Duration(1+r.IntN(3)) * time.Millisecond
	}},
}

// exactQuantile is the lower-rank quantile the sketch promises to approximate.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(q*float64(len(sorted)-1))]
}

func TestSketchQuantileWithinRelativeAccuracy(t *testing.T) {
	qs := []float64{0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1}
	for _, d := range distributions {
		t.Run(d.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				r := rand.New(rand.NewPCG(seed, 7))
				n := 1 + r.IntN(20000)
				vals := make([]time.Duration, n)
				var s Sketch
				for i := range vals {
					vals[i] = d.draw(r)
					s.Add(vals[i])
				}
				slices.Sort(vals)
				if s.Count() != uint64(n) {
					t.Fatalf("Count = %d, want %d", s.Count(), n)
				}
				for _, q := range qs {
					want, got := exactQuantile(vals, q), s.Quantile(q)
					if rel := math.Abs(float64(got-want)) / float64(want); rel > RelativeAccuracy+1e-9 {
						t.Errorf("seed %d n %d q %v: got %v, exact %v, relative error %.4f > %v", seed, n, q, got, want, rel, RelativeAccuracy)
					}
				}
				if s.Max() != vals[n-1] {
					t.Errorf("Max = %v, want %v", s.Max(), vals[n-1])
				}
			}
		})
	}
}

func TestSketchMergeEqualsSketchOfUnion(t *testing.T) {
	for _, d := range distributions {
		t.Run(d.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			var a, b, all Sketch
			for i := 0; i < 5000; i++ {
				v := d.draw(r)
				if r.IntN(3) == 0 {
					a.Add(v)
				} else {
					b.Add(v)
				}
				all.Add(v)
			}
			a.Add(0) // the zero bucket merges too
			all.Add(0)
			m := a.Clone()
			m.Merge(&b)
			if !m.Equal(&all) {
				t.Fatalf("merge(a, b) differs from sketch(a ∪ b): count %d vs %d", m.Count(), all.Count())
			}
			for _, q := range []float64{0.5, 0.95, 0.99} {
				if m.Quantile(q) != all.Quantile(q) {
					t.Errorf("q%v: merged %v, union %v", q, m.Quantile(q), all.Quantile(q))
				}
			}
			// Commutative.
			m2 := b.Clone()
			m2.Merge(&a)
			if !m2.Equal(m) {
				t.Error("merge(b, a) differs from merge(a, b)")
			}
		})
	}
}

func TestSketchEdges(t *testing.T) {
	tests := []struct {
		name string
		add  []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"below min trackable", []time.Duration{0, -5, 999}, 0.99, 0},
		{"above max trackable reports the exact max", []time.Duration{48 * time.Hour}, 1, 48 * time.Hour},
		{"single value q0", []time.Duration{time.Millisecond}, 0, time.Millisecond},
		{"NaN quantile", []time.Duration{time.Millisecond}, math.NaN(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sketch
			for _, v := range tt.add {
				s.Add(v)
			}
			got := s.Quantile(tt.q)
			if tt.want == 0 {
				if got != 0 {
					t.Fatalf("Quantile(%v) = %v, want 0", tt.q, got)
				}
				return
			}
			// Above MaxTrackable the bound does not hold; the max caps the answer.
			if tt.want > MaxTrackable {
				if got > tt.want || got < MaxTrackable*98/100 {
					t.Fatalf("Quantile(%v) = %v, want about %v", tt.q, got, MaxTrackable)
				}
				return
			}
			if rel := math.Abs(float64(got-tt.want)) / float64(tt.want); rel > RelativeAccuracy {
				t.Fatalf("Quantile(%v) = %v, want %v ± %v", tt.q, got, tt.want, RelativeAccuracy)
			}
		})
	}
}

func TestSketchGrowsDownAndUpAndResets(t *testing.T) {
	var s Sketch
	for _, v := range []time.Duration{time.Millisecond, time.Microsecond, time.Hour, 10 * time.Microsecond} {
		s.Add(v)
	}
	if s.Count() != 4 || s.Max() != time.Hour {
		t.Fatalf("count %d max %v", s.Count(), s.Max())
	}
	if q := s.Quantile(0); q < time.Microsecond*99/100 || q > time.Microsecond*101/100 {
		t.Fatalf("min quantile %v, want about 1µs", q)
	}
	s.Reset()
	if s.Count() != 0 || s.Quantile(0.5) != 0 {
		t.Fatal("Reset left data")
	}
	s.Add(2 * time.Millisecond)
	if allocs := testing.AllocsPerRun(100, func() { s.Add(3 * time.Millisecond) }); allocs != 0 {
		t.Fatalf("Add in a covered range allocated %v times", allocs)
	}
}

func TestSketchEncodingRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, d := range distributions {
		t.Run(d.name, func(t *testing.T) {
			var s Sketch
			for i := 0; i < 3000; i++ {
				s.Add(d.draw(r))
			}
			s.Add(0)
			b := s.AppendBinary(nil)
			rd := &reader{b: b}
			got, err := rd.decodeSketch()
			if err != nil {
				t.Fatal(err)
			}
			if rd.off != len(b) {
				t.Fatalf("decoder read %d of %d bytes", rd.off, len(b))
			}
			if !got.Equal(&s) {
				t.Fatal("decoded sketch differs")
			}
		})
	}
}

func TestSketchCountAtMost(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var s Sketch
	vals := make([]time.Duration, 20000)
	for i := range vals {
		vals[i] = time.Duration(math.Exp(r.NormFloat64()) * float64(100*time.Millisecond))
		s.Add(vals[i])
	}
	s.Add(0)
	vals = append(vals, 0)
	for _, th := range []time.Duration{-1, 0, 500, time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, time.Second, 48 * time.Hour} {
		var exact, loose uint64 // at most th; at most th·γ
		for _, v := range vals {
			if v <= th {
				exact++
			}
			if th >= 0 && float64(v) <= float64(th)*gamma {
				loose++
			}
		}
		if got := s.CountAtMost(th); got < exact || got > loose {
			t.Errorf("CountAtMost(%v) = %d, want between %d and %d", th, got, exact, loose)
		}
	}
}

// FuzzSketch feeds arbitrary latencies, split between two sketches, and checks the
// properties the fleet relies on: merging equals the sketch of the union, the
// encoding round-trips, and quantiles stay within the bound.
func FuzzSketch(f *testing.F) {
	f.Add([]byte{1, 2, 3, 200, 9, 9, 9, 9, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a, c, all Sketch
		var vals []time.Duration
		for i := 0; i+4 <= len(b) && i < 4000; i += 4 {
			v := time.Duration(binary.LittleEndian.Uint32(b[i:])) * time.Duration(1+b[i]%200)
			vals = append(vals, v)
			if b[i+1]&1 == 0 {
				a.Add(v)
			} else {
				c.Add(v)
			}
			all.Add(v)
		}
		m := a.Clone()
		m.Merge(&c)
		if !m.Equal(&all) {
			t.Fatal("merge(a, c) differs from the sketch of the union")
		}
		rd := &reader{b: all.AppendBinary(nil)}
		got, err := rd.decodeSketch()
		if err != nil || !got.Equal(&all) {
			t.Fatalf("round trip: %v", err)
		}
		if len(vals) == 0 {
			return
		}
		slices.Sort(vals)
		for _, q := range []float64{0, 0.5, 0.99, 1} {
			want, got := exactQuantile(vals, q), all.Quantile(q)
			if want < MinTrackable {
				if got != 0 {
					t.Fatalf("q%v: %v for a value below MinTrackable", q, got)
				}
				continue
			}
			if rel := math.Abs(float64(got-want)) / float64(want); rel > RelativeAccuracy+1e-9 {
				t.Fatalf("q%v: got %v, exact %v", q, got, want)
			}
		}
	})
}

func TestSketchBuckets(t *testing.T) {
	var s Sketch
	s.Add(0)
	s.AddN(time.Millisecond, 3)
	s.Add(time.Second)
	var idx []int
	var total uint64
	for i, c := range s.Buckets() {
		idx = append(idx, i)
		total += c
		if i != math.MinInt && (BucketUpper(i) < MinTrackable || bucketOf(int64(BucketUpper(i))) != i) {
			t.Errorf("bucket %d: upper %v does not fall in its own bucket", i, BucketUpper(i))
		}
	}
	if total != s.Count() || len(idx) != 3 || idx[0] != math.MinInt || idx[1] >= idx[2] {
		t.Fatalf("buckets %v total %d, want zero bucket then two increasing, total %d", idx, total, s.Count())
	}
}
