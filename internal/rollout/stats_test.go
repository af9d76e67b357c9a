package rollout

import (
	"iter"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// Reference values computed by hand from the textbook formulas (checked with a
// calculator): z = (p1 − p2 − m)/√(p1q1/n1 + p2q2/n2), p = ½·erfc(z/√2).
func TestTwoProportionZ(t *testing.T) {
	tests := []struct {
		name           string
		x1, n1, x2, n2 uint64
		margin         float64
		z, p           float64
	}{
		{"15% vs 5% of 200", 30, 200, 10, 200, 0, 3.380617018914066, 3.6161635821509776e-4},
		{"equal", 10, 100, 10, 100, 0, 0, 0.5},
		{"lower", 10, 200, 30, 200, 0, -3.380617018914066, 1 - 3.6161635821509776e-4},
		// 5 % vs 0 % of 500 with a 0.5 pp margin: z = (0.05 − 0.005)/√(0.05·0.95/500).
		{"margin", 25, 500, 0, 500, 0.005, 0.045 / math.Sqrt(0.05*0.95/500), 0.5 * math.Erfc(0.045/math.Sqrt(0.05*0.95/500)/math.Sqrt2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, p := TwoProportionZ(tt.x1, tt.n1, tt.x2, tt.n2, tt.margin)
			if !near(z, tt.z, 1e-9) || !near(p, tt.p, 1e-9) {
				t.Errorf("z, p = %v, %v; want %v, %v", z, p, tt.z, tt.p)
			}
		})
	}
	if _, p := TwoProportionZ(0, 100, 0, 100, 0); p != 1 {
		t.Errorf("no errors on either side: p = %v, want 1", p)
	}
	if _, p := TwoProportionZ(100, 100, 0, 100, 0.01); p != 0 {
		t.Errorf("all errors vs none: p = %v, want 0", p)
	}
	if _, p := TwoProportionZ(1, 0, 0, 100, 0); p != 1 {
		t.Errorf("empty sample: p = %v, want 1", p)
	}
}

func TestOneProportionZ(t *testing.T) {
	// 12 errors in 250 against a 1 % limit: z = (0.048 − 0.01)/√(0.01·0.99/250).
	z, p := OneProportionZ(12, 250, 0.01)
	if !near(z, 6.038596398555417, 1e-9) || !near(p, 7.773027207363557e-10, 1e-6) {
		t.Errorf("z, p = %v, %v", z, p)
	}
	if _, p := OneProportionZ(0, 0, 0.01); p != 1 {
		t.Errorf("empty: p = %v", p)
	}
}

// hist turns values into (bin, count) pairs in order.
func hist(vals []int) iter.Seq2[int, uint64] {
	v := slices.Sorted(slices.Values(vals))
	return func(yield func(int, uint64) bool) {
		for i := 0; i < len(v); {
			j := i
			for j < len(v) && v[j] == v[i] {
				j++
			}
			if !yield(v[i], uint64(j-i)) {
				return
			}
			i = j
		}
	}
}

func bruteU(a, b []int) float64 {
	var u float64
	for _, x := range a {
		for _, y := range b {
			switch {
			case x > y:
				u++
			case x == y:
				u += 0.5
			}
		}
	}
	return u
}

func TestMannWhitneyExact(t *testing.T) {
	// A = {3,4,5,5}, B = {1,2,5}: U = 9 (3 and 4 beat 1 and 2; each 5 beats 1, 2 and
	// ties 5). Ties {5,5,5}: Σt³−t = 24; σ² = 4·3/12·(8 − 24/42) = 7.428571;
	// z = (9 − 6 − ½)/σ = 0.917249, p = 0.179506.
	r := MannWhitneyU(hist([]int{3, 4, 5, 5}), hist([]int{1, 2, 5}))
	if r.U != 9 || r.NA != 4 || r.NB != 3 || !near(r.Z, 0.9172492321316785, 1e-9) || !near(r.P, 0.17950602689321474, 1e-9) {
		t.Errorf("got %+v", r)
	}
	if r.Effect != 0.75 {
		t.Errorf("effect %v, want 0.75", r.Effect)
	}
	if r := MannWhitneyU(hist(nil), hist([]int{1})); r.P != 1 || r.Effect != 0.5 {
		t.Errorf("empty side: %+v", r)
	}
	if r := MannWhitneyU(hist([]int{7, 7}), hist([]int{7, 7, 7})); r.P != 1 || r.U != 3 {
		t.Errorf("all tied: %+v", r)
	}
}

func TestMannWhitneyProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range 300 {
		a := make([]int, 1+rng.IntN(30))
		b := make([]int, 1+rng.IntN(30))
		for i := range a {
			a[i] = rng.IntN(12)
		}
		for i := range b {
			b[i] = rng.IntN(12) + rng.IntN(3)
		}
		ab, ba := MannWhitneyU(hist(a), hist(b)), MannWhitneyU(hist(b), hist(a))
		if ab.U != bruteU(a, b) {
			t.Fatalf("case %d: U = %v, brute force %v", k, ab.U, bruteU(a, b))
		}
		if ab.U+ba.U != float64(len(a)*len(b)) {
			t.Fatalf("case %d: U(a,b)+U(b,a) = %v, want na·nb = %d", k, ab.U+ba.U, len(a)*len(b))
		}
		if ab.P < 0 || ab.P > 1 || (ab.Z > 0 && ab.P > 0.5) || (ab.Z < 0 && ab.P < 0.5) {
			t.Fatalf("case %d: p %v inconsistent with z %v", k, ab.P, ab.Z)
		}
		// Shifting A up can only raise U.
		up := slices.Clone(a)
		for i := range up {
			up[i] += 3
		}
		if MannWhitneyU(hist(up), hist(b)).U < ab.U {
			t.Fatalf("case %d: shifting A up lowered U", k)
		}
	}
}
