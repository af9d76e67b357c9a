package rollout

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// traffic simulates one version's window: n requests, errRate of them 5xx, latencies
// log-normal around median × slow, deterministic for a seed.
func traffic(seed uint64, n int, errRate, slow float64) Sample {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := Sample{Latency: &sli.Sketch{}}
	median := 2 * float64(time.Millisecond)
	for range n {
		s.Requests++
		if rng.Float64() < errRate {
			s.Errors++
		}
		d := median * slow * math.Exp(0.5*rng.NormFloat64())
		s.Latency.Add(time.Duration(d))
	}
	return s
}

func verdict(a Analysis, check string) CheckVerdict {
	for _, c := range a.Checks {
		if c.Check == check {
			return c
		}
	}
	return CheckVerdict{}
}

// The scenarios: 500 req/s with a first step of 5 % weight and 10 s windows
// is 250 canary and 4,750 stable requests per window.
func TestAnalyseScenarios(t *testing.T) {
	const canaryN, stableN = 250, 4750
	tests := []struct {
		name   string
		stable Sample
		canary Sample
		want   Result
		check  string // a check whose result must equal want
	}{
		{"5% errors vs 0.1% fails in the first window", traffic(1, stableN, 0.001, 1), traffic(2, canaryN, 0.05, 1), Fail, "error_ratio"},
		{"3x slower fails on p99", traffic(3, stableN, 0.001, 1), traffic(4, canaryN, 0, 3), Fail, "p99_latency"},
		{"good canary passes", traffic(5, stableN, 0.001, 1), traffic(6, canaryN, 0.001, 1), Pass, "p99_latency"},
		{"low traffic is inconclusive", traffic(7, 400, 0.001, 1), traffic(8, 20, 0.05, 3), Inconclusive, "error_ratio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Analyse(DefaultChecks(), tt.stable, tt.canary)
			if a.Result != tt.want {
				t.Fatalf("result %s, want %s: %s", a.Result, tt.want, a)
			}
			v := verdict(a, tt.check)
			if v.Result != tt.want {
				t.Errorf("%s: %s, want %s (%+v)", tt.check, v.Result, tt.want, v)
			}
			if v.NCanary != tt.canary.Requests || v.NStable != tt.stable.Requests || v.Reason == "" {
				t.Errorf("%s: verdict lacks its numbers: %+v", tt.check, v)
			}
		})
	}
}

func TestAnalyseVerdictNumbers(t *testing.T) {
	stable := Sample{Requests: 4750, Errors: 5}
	canary := Sample{Requests: 250, Errors: 12}
	a := Analyse(Checks{MaxErrorRatio: 0.01, MaxErrorIncrease: 0.005, MinRequests: 100, Alpha: 0.05}, stable, canary)
	abs, rel := verdict(a, "error_ratio"), verdict(a, "error_ratio_vs_stable")
	if abs.Result != Fail || abs.Canary != 0.048 || abs.Threshold != 0.01 || !near(abs.P, 7.773027207363557e-10, 1e-6) {
		t.Errorf("absolute: %+v", abs)
	}
	_, p := TwoProportionZ(12, 250, 5, 4750, 0.005)
	if rel.Result != Fail || rel.P != p || !near(rel.Threshold, 5.0/4750+0.005, 1e-12) {
		t.Errorf("relative: %+v (p want %v)", rel, p)
	}
	if a.Result != Fail {
		t.Errorf("analysis %s", a.Result)
	}
}

// Over the limit but not significantly: inconclusive, never a rollback on noise.
func TestAnalyseNoiseIsInconclusive(t *testing.T) {
	// 2 errors in 150 (1.33 %) against a 1 % limit: p ≈ 0.34.
	a := Analyse(Checks{MaxErrorRatio: 0.01, MinRequests: 100, Alpha: 0.05}, Sample{Requests: 1000}, Sample{Requests: 150, Errors: 2})
	if v := verdict(a, "error_ratio"); v.Result != Inconclusive || v.P < 0.05 {
		t.Errorf("%+v", v)
	}
}

func TestAnalyseTrapsAndColdStarts(t *testing.T) {
	c := Checks{MaxColdStartIncrease: 0.01, MaxTrapIncrease: 0.005, MinRequests: 100, Alpha: 0.05}
	stable := Sample{Requests: 5000, ColdStarts: 10, Traps: 0}
	bad := Sample{Requests: 500, ColdStarts: 100, Traps: 40}
	a := Analyse(c, stable, bad)
	if verdict(a, "cold_start_ratio").Result != Fail || verdict(a, "trap_ratio").Result != Fail || a.Result != Fail {
		t.Errorf("bad: %s", a)
	}
	good := Sample{Requests: 500, ColdStarts: 1}
	if a := Analyse(c, stable, good); a.Result != Pass {
		t.Errorf("good: %s", a)
	}
}

func TestSampleAdd(t *testing.T) {
	var s Sample
	lat := &sli.Sketch{}
	lat.AddN(time.Millisecond, 10)
	sum := sli.Summary{Status: [5]uint64{0, 8, 0, 0, 2}, ColdStarts: 1, Discards: map[string]uint64{"trap": 1, "timeout": 2, "idle": 5}, Latency: lat}
	s.Add(&sum)
	s.Add(&sum)
	if s.Requests != 20 || s.Errors != 4 || s.ColdStarts != 2 || s.Traps != 6 || s.Latency.Count() != 20 {
		t.Errorf("%+v", s)
	}
	if lat.Count() != 10 {
		t.Errorf("Add changed the summary's sketch")
	}
}

func TestAnalyseNoTrafficNeverPasses(t *testing.T) {
	for _, c := range []Checks{{}, {MaxErrorRatio: 0.01}, {MaxP99Ratio: 1.2}} {
		if a := Analyse(c, Sample{}, Sample{}); a.Result != Inconclusive {
			t.Errorf("checks %+v on no traffic: %s", c, a)
		}
	}
}

// A canary slow only in its tail: 5 % of requests ten times slower. Mann–Whitney
// alone sees too small a shift in one window; the quantile test on the share of
// requests over the threshold does not miss it.
func TestAnalyseSlowTail(t *testing.T) {
	stable := traffic(61, 4750, 0, 1)
	canary := traffic(62, 250, 0, 1)
	slow := traffic(63, 13, 0, 10)
	canary.Requests += slow.Requests
	canary.Latency.Merge(slow.Latency)
	if mw := MannWhitneyU(canary.Latency.Buckets(), stable.Latency.Buckets()); mw.P < 0.05 {
		t.Fatalf("the case is meant to be one Mann–Whitney misses: %+v", mw)
	}
	a := Analyse(DefaultChecks(), stable, canary)
	if v := verdict(a, "p99_latency"); v.Result != Fail {
		t.Errorf("slow tail: %+v", v)
	}
}
