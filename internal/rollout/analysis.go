package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// Checks declare what a canary must satisfy against stable. A zero field turns its
// check off. Ratios are fractions (0.01 is 1 %); increases are in fractions too
// (0.005 is 0.5 percentage points).
type Checks struct {
	MaxErrorRatio        float64 `json:"max_error_ratio,omitempty"`         // canary 5xx ratio ≤ this, absolute
	MaxErrorIncrease     float64 `json:"max_error_increase,omitempty"`      // canary 5xx ratio ≤ stable's + this
	MaxP95Ratio          float64 `json:"max_p95_ratio,omitempty"`           // canary p95 ≤ this × stable's p95
	MaxP99Ratio          float64 `json:"max_p99_ratio,omitempty"`           // canary p99 ≤ this × stable's p99
	MaxColdStartIncrease float64 `json:"max_cold_start_increase,omitempty"` // canary cold-start ratio ≤ stable's + this
	MaxTrapIncrease      float64 `json:"max_trap_increase,omitempty"`       // canary (traps + timeouts) per request ≤ stable's + this
	// MinRequests is the sample each side needs before any check can pass or fail.
	MinRequests uint64 `json:"min_requests,omitempty"`
	// Alpha is the significance level: a check fails only when its test's p-value is
	// below it, so noise on a small sample is inconclusive rather than a rollback.
	Alpha float64 `json:"alpha,omitempty"`
}

// IsZero reports whether no check is declared.
func (c Checks) IsZero() bool { return c == Checks{} }

// Validate checks ranges.
func (c Checks) Validate() error {
	var msgs []string
	frac := func(name string, v float64) {
		if v < 0 || v > 1 || v != v {
			msgs = append(msgs, fmt.Sprintf("%s: %v is not a fraction in 0–1 (write percentages in the manifest, such as 0.5 for 0.5 %%)", name, v))
		}
	}
	frac("max_error_ratio", c.MaxErrorRatio)
	frac("max_error_increase", c.MaxErrorIncrease)
	frac("max_cold_start_increase", c.MaxColdStartIncrease)
	frac("max_trap_increase", c.MaxTrapIncrease)
	for name, v := range map[string]float64{"max_p95_ratio": c.MaxP95Ratio, "max_p99_ratio": c.MaxP99Ratio} {
		if v != 0 && (v < 1 || v > 100 || v != v) {
			msgs = append(msgs, fmt.Sprintf("%s: %v must be between 1 and 100 (1.2 allows 20 %% slower than stable)", name, v))
		}
	}
	if c.Alpha < 0 || c.Alpha >= 0.5 || c.Alpha != c.Alpha {
		msgs = append(msgs, fmt.Sprintf("alpha: %v must be in (0, 0.5), such as 0.05", c.Alpha))
	}
	if c.MinRequests > 1e9 {
		msgs = append(msgs, "min_requests: at most 1e9")
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// Sample is one version's SLIs over an analysis window, merged over nodes and routes.
type Sample struct {
	Requests   uint64
	Errors     uint64 // 5xx
	ColdStarts uint64
	Traps      uint64 // instances discarded for a trap or a timeout
	Latency    *sli.Sketch
}

// Add merges one SLI summary into s.
func (s *Sample) Add(sum *sli.Summary) {
	s.Requests += sum.Requests()
	s.Errors += sum.Errors()
	s.ColdStarts += sum.ColdStarts
	s.Traps += sum.Discards["trap"] + sum.Discards["timeout"]
	if sum.Latency != nil {
		if s.Latency == nil {
			s.Latency = &sli.Sketch{}
		}
		s.Latency.Merge(sum.Latency)
	}
}

// Metrics is where analysis reads its samples: the control plane implements it over
// the fleet SLI store (or a Prometheus, with queries per check). Window is
// [from, to); versions are the deployment's revisions' versions.
type Metrics interface {
	Samples(ctx context.Context, app, stable, canary string, from, to time.Time) (stableS, canaryS Sample, err error)
}

// Result is a check's or an analysis's verdict.
type Result string

const (
	Pass         Result = "pass"
	Fail         Result = "fail"
	Inconclusive Result = "inconclusive"
)

// CheckVerdict is one check's outcome with the numbers behind it, for the rollout's
// status and events.
type CheckVerdict struct {
	Check     string  `json:"check"`
	Result    Result  `json:"result"`
	Canary    float64 `json:"canary"`    // observed value on the canary
	Stable    float64 `json:"stable"`    // observed value on stable
	Threshold float64 `json:"threshold"` // the limit the canary was held to
	// P is the test's one-sided p-value (-1 when no test applies).
	P       float64 `json:"p"`
	NCanary uint64  `json:"n_canary"`
	NStable uint64  `json:"n_stable"`
	Reason  string  `json:"reason"`
}

// Analysis is the verdict of one window: Fail if any check failed, else Inconclusive
// if any was, else Pass.
type Analysis struct {
	Result Result         `json:"result"`
	Checks []CheckVerdict `json:"checks"`
}

// String is the result and, unless it passed, the checks that did not with their
// reasons: "fail (error_ratio: 5.2% above 1% (p=1.2e-11 < 0.05))".
func (a Analysis) String() string {
	var parts []string
	for _, c := range a.Checks {
		if c.Result != Pass {
			parts = append(parts, fmt.Sprintf("%s %s: %s", c.Check, c.Result, c.Reason))
		}
	}
	if len(parts) == 0 {
		return string(a.Result)
	}
	return fmt.Sprintf("%s (%s)", a.Result, strings.Join(parts, "; "))
}

// Analyse judges canary against stable with c. It is pure and allocates only its
// verdicts; the latency test walks sketch buckets, not requests.
func Analyse(c Checks, stable, canary Sample) Analysis {
	var a Analysis
	add := func(v CheckVerdict) { a.Checks = append(a.Checks, v) }
	// At least one request each side even with MinRequests 0: a canary that saw no
	// traffic has shown nothing, and must not pass.
	minN := max(c.MinRequests, 1)
	enough := canary.Requests >= minN && stable.Requests >= minN
	alpha := c.Alpha
	if alpha == 0 {
		alpha = DefaultChecks().Alpha
	}
	ratio := func(x, n uint64) float64 {
		if n == 0 {
			return 0
		}
		return float64(x) / float64(n)
	}
	small := func(v *CheckVerdict) bool {
		if enough {
			return false
		}
		v.Result, v.P = Inconclusive, -1
		v.Reason = fmt.Sprintf("%d canary and %d stable requests, %d needed on each side", canary.Requests, stable.Requests, minN)
		return true
	}
	// judge turns an observation over its limit into fail (significant) or
	// inconclusive (could be noise); at or under the limit it passes.
	judge := func(v *CheckVerdict, over bool, p float64, unit string) {
		v.P = p
		switch {
		case !over:
			v.Result = Pass
			v.Reason = fmt.Sprintf("%s within %s", fmtVal(v.Canary, unit), fmtVal(v.Threshold, unit))
		case p < alpha:
			v.Result = Fail
			v.Reason = fmt.Sprintf("%s above %s (p=%.2g < %.2g)", fmtVal(v.Canary, unit), fmtVal(v.Threshold, unit), p, alpha)
		default:
			v.Result = Inconclusive
			v.Reason = fmt.Sprintf("%s above %s but not significant (p=%.2g ≥ %.2g)", fmtVal(v.Canary, unit), fmtVal(v.Threshold, unit), p, alpha)
		}
	}
	rc, rs := ratio(canary.Errors, canary.Requests), ratio(stable.Errors, stable.Requests)
	if c.MaxErrorRatio > 0 {
		v := CheckVerdict{Check: "error_ratio", Canary: rc, Stable: rs, Threshold: c.MaxErrorRatio, NCanary: canary.Requests, NStable: stable.Requests}
		if !small(&v) {
			_, p := OneProportionZ(canary.Errors, canary.Requests, c.MaxErrorRatio)
			judge(&v, rc > c.MaxErrorRatio, p, "%")
		}
		add(v)
	}
	increase := func(name string, xc, xs uint64, margin float64) {
		pc, ps := ratio(xc, canary.Requests), ratio(xs, stable.Requests)
		v := CheckVerdict{Check: name, Canary: pc, Stable: ps, Threshold: ps + margin, NCanary: canary.Requests, NStable: stable.Requests}
		if !small(&v) {
			_, p := TwoProportionZ(xc, canary.Requests, xs, stable.Requests, margin)
			judge(&v, pc > ps+margin, p, "%")
		}
		add(v)
	}
	if c.MaxErrorIncrease > 0 {
		increase("error_ratio_vs_stable", canary.Errors, stable.Errors, c.MaxErrorIncrease)
	}
	var mw *MannWhitney
	quantile := func(name string, q, maxRatio float64) {
		v := CheckVerdict{Check: name, NCanary: canary.Requests, NStable: stable.Requests}
		if canary.Latency != nil {
			v.Canary = canary.Latency.Quantile(q).Seconds()
		}
		if stable.Latency != nil {
			v.Stable = stable.Latency.Quantile(q).Seconds()
		}
		v.Threshold = v.Stable * maxRatio
		if !small(&v) {
			if canary.Latency == nil || stable.Latency == nil {
				v.Result, v.P, v.Reason = Inconclusive, -1, "no latency recorded"
			} else {
				if mw == nil {
					r := MannWhitneyU(canary.Latency.Buckets(), stable.Latency.Buckets())
					mw = &r
				}
				// The canary's q-quantile exceeds T exactly when more than 1−q of its
				// requests took longer than T: a binomial test of that share sees a
				// slow tail that Mann–Whitney, testing the whole distribution, can
				// miss. Either test may reject; Bonferroni keeps the level at alpha.
				limit := time.Duration(v.Threshold * float64(time.Second))
				above := canary.Latency.Count() - canary.Latency.CountAtMost(limit)
				_, pTail := OneProportionZ(above, canary.Latency.Count(), 1-q)
				judge(&v, v.Canary > v.Threshold, min(1, 2*min(mw.P, pTail)), "s")
			}
		}
		add(v)
	}
	if c.MaxP95Ratio > 0 {
		quantile("p95_latency", 0.95, c.MaxP95Ratio)
	}
	if c.MaxP99Ratio > 0 {
		quantile("p99_latency", 0.99, c.MaxP99Ratio)
	}
	if c.MaxColdStartIncrease > 0 {
		increase("cold_start_ratio", canary.ColdStarts, stable.ColdStarts, c.MaxColdStartIncrease)
	}
	if c.MaxTrapIncrease > 0 {
		increase("trap_ratio", canary.Traps, stable.Traps, c.MaxTrapIncrease)
	}
	a.Result = Pass
	for _, v := range a.Checks {
		if v.Result == Fail {
			a.Result = Fail
			break
		}
		if v.Result == Inconclusive {
			a.Result = Inconclusive
		}
	}
	if len(a.Checks) == 0 && !enough {
		a.Result = Inconclusive
	}
	return a
}

func fmtVal(v float64, unit string) string {
	if unit == "%" {
		return fmt.Sprintf("%.3g%%", v*100)
	}
	return time.Duration(v * float64(time.Second)).Round(time.Microsecond).String()
}
