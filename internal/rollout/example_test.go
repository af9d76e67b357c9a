package rollout_test

import (
	"fmt"
	"time"

	"fermion.dev/fermion/internal/rollout"
	"fermion.dev/fermion/internal/sli"
)

// A controller's loop over one rollout: a canary whose second step serves 5 %
// errors is rolled back at its first analysis.
func Example() {
	spec, err := rollout.ParseFlags(rollout.Flags{Steps: "1node,5%,100%", Interval: "10s"})
	if err != nil {
		panic(err)
	}
	nodes := []rollout.Node{{Name: "edge-1"}, {Name: "edge-2"}}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	from := rollout.Revision{Number: 1, Version: "1.0.0"}
	to := rollout.Revision{Number: 2, Version: "2.0.0"}

	// What the fleet SLIs would say about each step's window.
	samples := func(step int) (stable, canary rollout.Sample) {
		stable = rollout.Sample{Requests: 4750, Errors: 5, Latency: &sli.Sketch{}}
		canary = rollout.Sample{Requests: 250, Latency: &sli.Sketch{}}
		for i := range 4750 {
			stable.Latency.Add(time.Duration(1+i%5) * time.Millisecond)
		}
		for i := range 250 {
			canary.Latency.Add(time.Duration(1+i%5) * time.Millisecond)
		}
		if step == 1 {
			canary.Errors = 13
		}
		return stable, canary
	}
	show := func(acts []rollout.Action) {
		for _, a := range acts {
			if a.Kind == rollout.ActRecord {
				fmt.Println(a.Message)
			}
		}
	}

	s, acts := rollout.Start("hello", from, to, spec, nodes, now)
	show(acts)
	for !s.Phase.Terminal() && now.Before(time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)) {
		now = now.Add(5 * time.Second)
		s, acts = rollout.Step(s, rollout.Event{Kind: rollout.EventReady, Step: s.Step}, nodes, now)
		show(acts)
		if _, _, due := s.AnalysisDue(now); due {
			stable, canary := samples(s.Step)
			s, acts = rollout.Step(s, rollout.Event{Kind: rollout.EventObserved, Step: s.Step, Stable: stable, Canary: canary}, nodes, now)
			for _, a := range acts {
				if a.Analysis != nil {
					v := a.Analysis.Checks[0]
					fmt.Printf("step %d analysis %s; %s %s: canary %.1f%%, limit %.1f%%, p=%.1g, n=%d\n", a.Step+1, a.Analysis.Result, v.Check, v.Result, v.Canary*100, v.Threshold*100, v.P, v.NCanary)
				} else if a.Kind == rollout.ActRecord {
					fmt.Println(a.Message)
				}
			}
		}
	}
	fmt.Println(s.Phase)
	// Output:
	// rollout of hello from revision 1 to 2 started (canary, 3 steps)
	// step 1: revision 2 on 1 node(s): [edge-1]
	// step 1 analysis pass; error_ratio pass: canary 0.0%, limit 1.0%, p=0.9, n=250
	// step 2: 5% of requests to revision 2
	// step 2 analysis fail; error_ratio fail: canary 5.2%, limit 1.0%, p=1e-11, n=250
	// rollout rolled_back: step 2 failed analysis: fail (error_ratio fail: 5.2% above 1% (p=1.2e-11 < 0.05); error_ratio_vs_stable fail: 5.2% above 0.605% (p=0.00054 < 0.05))
	// rolled_back
}
