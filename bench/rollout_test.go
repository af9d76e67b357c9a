package bench

// Canary analysis cost per step (issue 15): judging one window of canary vs stable,
// against merging that window's SLI summaries from 100 nodes into the two samples,
// which the controller does anyway (the baseline). Reproduce with
//
//	go test -c -o /tmp/bench.test ./bench/ && cd bench &&
//	for i in 1 2 3 4 5; do /tmp/bench.test -test.run '^$' -test.bench Rollout -test.benchtime 1s; done
//
// Results and the machine are in bench/RESULTS.md ("Canary analysis").

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"fermion.dev/fermion/internal/rollout"
	"fermion.dev/fermion/internal/sli"
)

// rolloutWindow is one 10 s window at 500 req/s with a 5 % canary weight over 100
// nodes: a summary per node and version, 48 stable and 2–3 canary requests each.
func rolloutWindow() (stable, canary []sli.Summary) {
	rng := rand.New(rand.NewPCG(3, 4))
	mk := func(n int, errRate float64) sli.Summary {
		s := sli.Summary{Latency: &sli.Sketch{}, Discards: map[string]uint64{}}
		for range n {
			code := 1
			if rng.Float64() < errRate {
				code = 4
			}
			s.Status[code]++
			s.Latency.Add(time.Duration(2e6 * math.Exp(0.5*rng.NormFloat64())))
		}
		return s
	}
	for i := range 100 {
		stable = append(stable, mk(48, 0.001))
		canary = append(canary, mk(2+i%2, 0.05))
	}
	return stable, canary
}

func merge(sums []sli.Summary) rollout.Sample {
	var s rollout.Sample
	for i := range sums {
		s.Add(&sums[i])
	}
	return s
}

// BenchmarkRolloutMerge is the baseline: folding a window's summaries into samples.
func BenchmarkRolloutMerge(b *testing.B) {
	st, ca := rolloutWindow()
	b.ReportAllocs()
	for b.Loop() {
		merge(st)
		merge(ca)
	}
}

// BenchmarkRolloutAnalyse is the analysis of the merged samples with the default
// checks (error ratios, p99 with Mann–Whitney U, traps).
func BenchmarkRolloutAnalyse(b *testing.B) {
	st, ca := rolloutWindow()
	stable, canary := merge(st), merge(ca)
	checks := rollout.DefaultChecks()
	checks.MaxP95Ratio = 1.2
	if a := rollout.Analyse(checks, stable, canary); a.Result != rollout.Fail {
		b.Fatalf("a 5 %% error canary was judged %s", a)
	}
	b.ReportAllocs()
	for b.Loop() {
		rollout.Analyse(checks, stable, canary)
	}
}
