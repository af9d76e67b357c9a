package rollout

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Random event sequences, with stale, repeated and out-of-order events mixed in,
// never break the rollout's promises: the step index never goes back, a terminal phase
// is final, at most one promote or roll back is issued and never both, every
// roll back comes with the end of expected alerts, and weights never shrink.
func TestStepProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	kindsOf := []EventKind{EventTick, EventReady, EventObserved, EventPromote, EventAbort, EventPause, EventResume, EventStepFailed}
	samples := [][2]Sample{
		{traffic(51, 4750, 0.001, 1), traffic(52, 250, 0.001, 1)}, // good
		{traffic(53, 4750, 0.001, 1), traffic(54, 250, 0.05, 1)},  // bad
		{traffic(55, 100, 0, 1), traffic(56, 10, 0, 1)},           // low traffic
	}
	specs := []string{"1node,10%,50%,100%", "1node@region=eu,manual,25%nodes,pause,100%", "10%,100%", "2nodes,100%nodes"}
	outcomes := map[Phase]int{}
	for round := range 400 {
		s, acts := Start("hello", v1, v2, canarySpec(t, specs[round%len(specs)]), fleet(), t0)
		now := t0
		ends, weight, step := 0, 0, 0
		promoted, rolledBack := false, false
		check := func(acts []Action) {
			for _, a := range acts {
				switch a.Kind {
				case ActPromote:
					ends++
					promoted = true
				case ActRollBack:
					ends++
					rolledBack = true
				case ActSetWeight:
					if a.Weight <= weight {
						t.Fatalf("round %d: weight %d after %d", round, a.Weight, weight)
					}
					weight = a.Weight
				}
			}
			if slices.ContainsFunc(acts, func(a Action) bool { return a.Kind == ActRollBack }) &&
				!slices.ContainsFunc(acts, func(a Action) bool { return a.Kind == ActExpectAlerts && !a.Expect }) {
				t.Fatalf("round %d: roll back without ending expected alerts", round)
			}
		}
		check(acts)
		for range 120 {
			now = now.Add(time.Duration(rng.IntN(15)) * time.Second)
			ev := Event{Kind: kindsOf[rng.IntN(len(kindsOf))], Step: s.Step + rng.IntN(3) - 1}
			if ev.Kind == EventObserved {
				smp := samples[rng.IntN(len(samples))]
				ev.Stable, ev.Canary = smp[0], smp[1]
			}
			if (ev.Kind == EventAbort || ev.Kind == EventStepFailed) && rng.IntN(8) != 0 {
				continue // keep most rollouts running long enough to matter
			}
			prev := s
			s, acts = Step(s, ev, fleet(), now)
			check(acts)
			if s.Step < step {
				t.Fatalf("round %d: step went back from %d to %d", round, step, s.Step)
			}
			step = s.Step
			if prev.Phase.Terminal() && (len(acts) > 0 || s.Phase != prev.Phase) {
				t.Fatalf("round %d: terminal phase %s moved to %s with %v", round, prev.Phase, s.Phase, kinds(acts))
			}
			// The promote to every node is issued once, when the rollout enters
			// promoting; a rollout that ends after it (aborted while promoting) may
			// still roll back, nothing more.
			if ends > 2 || (ends == 2 && s.Phase != Aborted && s.Phase != Failed) {
				t.Fatalf("round %d: %d promote/roll back actions, phase %s", round, ends, s.Phase)
			}
		}
		switch {
		case s.Phase == Succeeded && (!promoted || rolledBack):
			t.Fatalf("round %d: succeeded with promote %v, roll back %v", round, promoted, rolledBack)
		case s.Phase.Terminal() && s.Phase != Succeeded && !rolledBack:
			t.Fatalf("round %d: %s without a roll back", round, s.Phase)
		case !s.Phase.Terminal() && rolledBack:
			t.Fatalf("round %d: rolled back but still %s", round, s.Phase)
		}
		outcomes[s.Phase]++
	}
	// The sequences must reach every ending, or the test proves little.
	for _, p := range []Phase{Succeeded, RolledBack, Aborted, Failed} {
		if outcomes[p] == 0 {
			t.Errorf("no round ended %s: %v", p, outcomes)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}
