package rollout

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func fleet() []Node {
	return []Node{
		{Name: "n3", Labels: map[string]string{"region": "us"}},
		{Name: "n1", Labels: map[string]string{"region": "eu"}},
		{Name: "n2", Labels: map[string]string{"region": "eu"}},
		{Name: "n4", Labels: map[string]string{"region": "us"}},
	}
}

func canarySpec(t *testing.T, steps string) Spec {
	t.Helper()
	st, err := ParseSteps(steps)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Spec{Kind: Canary, Steps: st, Interval: 10 * time.Second}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	v1 = Revision{Number: 1, Version: "1.0.0"}
	v2 = Revision{Number: 2, Version: "2.0.0"}
)

func kinds(acts []Action) []ActionKind {
	var k []ActionKind
	for _, a := range acts {
		if a.Kind != ActRecord {
			k = append(k, a.Kind)
		}
	}
	return k
}

func good() (Sample, Sample) {
	return traffic(11, 4750, 0.001, 1), traffic(12, 250, 0.001, 1)
}

// run drives s through ready and a passing or failing analysis for its current
// step, returning the new state and the actions of the analysis.
func analyse(t *testing.T, s State, stable, canary Sample, now time.Time) (State, []Action, time.Time) {
	t.Helper()
	s, _ = Step(s, Event{Kind: EventReady, Step: s.Step}, fleet(), now)
	if s.Phase != Analysing {
		t.Fatalf("after ready: phase %s", s.Phase)
	}
	if _, _, due := s.AnalysisDue(now); due {
		t.Fatal("analysis due before its window closed")
	}
	now = now.Add(10 * time.Second)
	from, to, due := s.AnalysisDue(now)
	if !due || to.Sub(from) != 10*time.Second*time.Duration(1+s.Extensions) {
		t.Fatalf("window %v–%v due %v", from, to, due)
	}
	s, acts := Step(s, Event{Kind: EventObserved, Step: s.Step, Stable: stable, Canary: canary}, fleet(), now)
	return s, acts, now
}

func TestGoodCanaryPromotes(t *testing.T) {
	s, acts := Start("hello", v1, v2, canarySpec(t, "1node,10%,50%,100%"), fleet(), t0)
	if !reflect.DeepEqual(kinds(acts), []ActionKind{ActExpectAlerts, ActSetNodes}) || !reflect.DeepEqual(acts[2].Nodes, []string{"n1"}) {
		t.Fatalf("start: %+v", acts)
	}
	now := t0
	stable, canary := good()
	for i, want := range []int{10, 50, 100} {
		s, acts, now = analyse(t, s, stable, canary, now)
		if s.Step != i+1 || s.Weight != want || !slices.Contains(kinds(acts), ActSetWeight) {
			t.Fatalf("step %d: state %+v acts %v", i+1, s, kinds(acts))
		}
	}
	s, acts, now = analyse(t, s, stable, canary, now)
	if s.Phase != Promoting || !reflect.DeepEqual(kinds(acts), []ActionKind{ActPromote}) {
		t.Fatalf("after last step: %s %v", s.Phase, kinds(acts))
	}
	s, acts = Step(s, Event{Kind: EventReady, Step: s.Step}, fleet(), now)
	if s.Phase != Succeeded || !reflect.DeepEqual(kinds(acts), []ActionKind{ActExpectAlerts}) || acts[0].Expect {
		t.Fatalf("final: %s %+v", s.Phase, acts)
	}
	if len(s.Verdicts) != 4 {
		t.Errorf("%d verdicts recorded, want 4", len(s.Verdicts))
	}
}

func TestBadCanaryRollsBack(t *testing.T) {
	tests := []struct {
		name   string
		canary Sample
		check  string
	}{
		{"5% errors", traffic(21, 250, 0.05, 1), "error_ratio"},
		{"3x slower", traffic(22, 250, 0, 3), "p99_latency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := Start("hello", v1, v2, canarySpec(t, "5%,50%,100%"), fleet(), t0)
			s, acts, _ := analyse(t, s, traffic(23, 4750, 0.001, 1), tt.canary, t0)
			if s.Phase != RolledBack || !reflect.DeepEqual(kinds(acts), []ActionKind{ActRollBack, ActExpectAlerts}) {
				t.Fatalf("%s %v", s.Phase, kinds(acts))
			}
			if !strings.Contains(s.Reason, tt.check) || acts[0].Analysis == nil || verdict(*acts[0].Analysis, tt.check).Result != Fail {
				t.Errorf("reason %q; first record %+v", s.Reason, acts[0])
			}
			// Terminal: nothing moves it any more.
			if s2, acts := Step(s, Event{Kind: EventPromote, Step: s.Step}, fleet(), t0); !reflect.DeepEqual(s2, s) || acts != nil {
				t.Error("a rolled back rollout was promoted")
			}
		})
	}
}

func TestInconclusiveExtendsThenFails(t *testing.T) {
	spec := canarySpec(t, "10%,100%")
	spec.MaxExtensions = 2
	s, _ := Start("hello", v1, v2, spec, fleet(), t0)
	s, _ = Step(s, Event{Kind: EventReady, Step: 0}, fleet(), t0)
	low := traffic(31, 20, 0, 1)
	now := t0
	for ext := 1; ext <= 2; ext++ {
		now = s.WindowEnd
		s, _ = Step(s, Event{Kind: EventObserved, Step: 0, Stable: low, Canary: low}, fleet(), now)
		if s.Phase != Analysing || s.Extensions != ext || !s.WindowEnd.Equal(t0.Add(time.Duration(ext+1)*10*time.Second)) || !s.WindowStart.Equal(t0) {
			t.Fatalf("extension %d: %+v", ext, s)
		}
	}
	s, acts := Step(s, Event{Kind: EventObserved, Step: 0, Stable: low, Canary: low}, fleet(), s.WindowEnd)
	if s.Phase != RolledBack || !strings.Contains(s.Reason, "inconclusive after 2 extensions") || !slices.Contains(kinds(acts), ActRollBack) {
		t.Fatalf("%s %q %v", s.Phase, s.Reason, kinds(acts))
	}
}

func TestManualGatePauseResumeAbort(t *testing.T) {
	s, _ := Start("hello", v1, v2, canarySpec(t, "1node,manual,100%"), fleet(), t0)
	s, _ = Step(s, Event{Kind: EventReady, Step: 0}, fleet(), t0)
	if s.Phase != Paused || !s.Gated {
		t.Fatalf("at manual gate: %+v", s)
	}
	if s2, acts := Step(s, Event{Kind: EventResume}, fleet(), t0); !reflect.DeepEqual(s2, s) || acts != nil {
		t.Error("resume passed a manual gate; only promote may")
	}
	s, acts := Step(s, Event{Kind: EventPromote, Step: 0, By: "alice"}, fleet(), t0)
	if s.Step != 1 || s.Weight != 100 || !strings.Contains(acts[0].Message, "alice") {
		t.Fatalf("promote: %+v %+v", s, acts)
	}
	// Pause while progressing, resume, then abort.
	s, _ = Step(s, Event{Kind: EventPause}, fleet(), t0)
	if s.Phase != Paused || s.Gated {
		t.Fatalf("pause: %+v", s)
	}
	if s2, acts := Step(s, Event{Kind: EventPromote, Step: 1}, fleet(), t0); !reflect.DeepEqual(s2, s) || acts != nil {
		t.Error("promote went through a user's pause")
	}
	s, _ = Step(s, Event{Kind: EventResume}, fleet(), t0)
	if s.Phase != Progressing {
		t.Fatalf("resume: %s", s.Phase)
	}
	s, acts = Step(s, Event{Kind: EventAbort, By: "bob"}, fleet(), t0)
	if s.Phase != Aborted || !reflect.DeepEqual(kinds(acts), []ActionKind{ActRollBack, ActExpectAlerts}) || !strings.Contains(s.Reason, "bob") {
		t.Fatalf("abort: %s %v %q", s.Phase, kinds(acts), s.Reason)
	}
}

func TestPauseGateWaitsInterval(t *testing.T) {
	s, _ := Start("hello", v1, v2, canarySpec(t, "10%,pause,100%"), fleet(), t0)
	s, _ = Step(s, Event{Kind: EventReady, Step: 0}, fleet(), t0)
	if s2, _ := Step(s, Event{Kind: EventTick}, fleet(), t0.Add(9*time.Second)); s2.Step != 0 {
		t.Fatal("pause ended early")
	}
	if _, _, due := s.AnalysisDue(t0.Add(time.Hour)); due {
		t.Fatal("a pause gate asked for analysis")
	}
	if s, _ = Step(s, Event{Kind: EventTick}, fleet(), t0.Add(10*time.Second)); s.Step != 1 {
		t.Fatalf("pause did not end: %+v", s)
	}
}

func TestSelectorSteps(t *testing.T) {
	s, acts := Start("hello", v1, v2, canarySpec(t, "1node@region=us,100%nodes"), fleet(), t0)
	if !reflect.DeepEqual(s.CanaryNodes, []string{"n3"}) {
		t.Fatalf("selector subset %v (%v)", s.CanaryNodes, acts)
	}
	s, acts, _ = analyse(t, s, traffic(41, 4750, 0, 1), traffic(42, 250, 0, 1), t0)
	// The subset grows from the nodes already on the canary.
	if !reflect.DeepEqual(s.CanaryNodes, []string{"n1", "n2", "n3", "n4"}) || !slices.Contains(kinds(acts), ActSetNodes) {
		t.Fatalf("grown subset %v", s.CanaryNodes)
	}

	s, acts = Start("hello", v1, v2, canarySpec(t, "1node@region=ap,100%"), fleet(), t0)
	if s.Phase != Failed || !strings.Contains(s.Reason, "matches none of the 4 nodes") || !slices.Contains(kinds(acts), ActRollBack) {
		t.Fatalf("empty selector: %s %q %v", s.Phase, s.Reason, kinds(acts))
	}
	// One node is counted as one, and a one-step plan as one step.
	s, _ = Start("hello", v1, v2, canarySpec(t, "1node@region=ap,100%"), fleet()[:1], t0)
	if !strings.Contains(s.Reason, "matches none of the 1 node;") {
		t.Fatalf("empty selector on one node: %q", s.Reason)
	}
	_, acts = Start("hello", v1, v2, canarySpec(t, "100%"), fleet(), t0)
	if len(acts) == 0 || !strings.HasSuffix(acts[0].Message, "started (canary, 1 step)") {
		t.Fatalf("a one-step rollout's record: %+v", acts)
	}
}

func TestStepFailed(t *testing.T) {
	s, _ := Start("hello", v1, v2, canarySpec(t, "10%,100%"), fleet(), t0)
	if s2, acts := Step(s, Event{Kind: EventStepFailed, Step: 5, Reason: "x"}, fleet(), t0); !reflect.DeepEqual(s2, s) || acts != nil {
		t.Error("a stale step failure changed the rollout")
	}
	s, acts := Step(s, Event{Kind: EventStepFailed, Step: 0, Reason: "warmup hook /warm timed out after 5s"}, fleet(), t0)
	if s.Phase != Failed || !strings.Contains(s.Reason, "warmup hook") || !slices.Contains(kinds(acts), ActRollBack) {
		t.Fatalf("%s %q", s.Phase, s.Reason)
	}
}

func TestRollingAndAllAtOnce(t *testing.T) {
	spec, err := Spec{Kind: Rolling, MaxUnavailable: Amount{Count: 1}, MaxSurge: Amount{Count: 1}}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	s, acts := Start("hello", v1, v2, spec, fleet(), t0)
	var batches [][]string
	batches = append(batches, acts[2].Nodes)
	for s.Phase == Progressing {
		s, acts = Step(s, Event{Kind: EventReady, Step: s.Step}, fleet(), t0)
		for _, a := range acts {
			if a.Kind == ActSetNodes {
				batches = append(batches, a.Nodes)
			}
		}
	}
	if s.Phase != Promoting || !reflect.DeepEqual(batches, [][]string{{"n1", "n2"}, {"n1", "n2", "n3", "n4"}}) {
		t.Fatalf("%s %v", s.Phase, batches)
	}
	s, _ = Start("hello", v1, v2, Default(), fleet(), t0)
	s, _ = Step(s, Event{Kind: EventReady, Step: 0}, fleet(), t0)
	if s.Phase != Promoting {
		t.Fatalf("all at once: %s", s.Phase)
	}
}

// A leader that fails over after storing a state resumes from it: repeated and
// stale events change nothing, so no step is promoted twice, and Reapply keeps a
// rollback a rollback.
func TestResumeIsIdempotent(t *testing.T) {
	s, _ := Start("hello", v1, v2, canarySpec(t, "1node,10%,100%"), fleet(), t0)
	stable, canary := good()
	s, _, now := analyse(t, s, stable, canary, t0) // now at step 1 (10 %)
	stored := s

	// The old leader's analysis of step 0 is delivered again after failover.
	again, acts := Step(stored, Event{Kind: EventObserved, Step: 0, Stable: stable, Canary: canary}, fleet(), now.Add(time.Minute))
	if !reflect.DeepEqual(again, stored) || acts != nil {
		t.Fatalf("a repeated analysis moved the rollout: step %d, %v", again.Step, kinds(acts))
	}
	// Same for a repeated promote of the step already passed.
	if again, acts := Step(stored, Event{Kind: EventPromote, Step: 0}, fleet(), now); !reflect.DeepEqual(again, stored) || acts != nil {
		t.Fatal("a repeated promote moved the rollout")
	}
	// The new leader reapplies the step's desired state, then carries on.
	if got := Reapply(stored); !reflect.DeepEqual(kinds(got), []ActionKind{ActExpectAlerts, ActSetWeight}) || got[1].Weight != 10 {
		t.Fatalf("reapply: %+v", got)
	}
	// Applying the same event to the same state twice gives the same state.
	a1, acts1 := Step(stored, Event{Kind: EventReady, Step: 1}, fleet(), now)
	a2, acts2 := Step(stored, Event{Kind: EventReady, Step: 1}, fleet(), now)
	if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(acts1, acts2) {
		t.Fatal("Step is not deterministic")
	}
	// Step does not alias the caller's state.
	a1.Verdicts[0].Step = 99
	if stored.Verdicts[0].Step == 99 {
		t.Fatal("Step shares slices with its input")
	}
	// Ready again while analysing (level-triggered) does not restart the window.
	a3, _ := Step(a1, Event{Kind: EventReady, Step: 1}, fleet(), now.Add(5*time.Second))
	if !a3.WindowStart.Equal(a1.WindowStart) {
		t.Fatal("a repeated ready restarted the window")
	}

	rb, _ := Step(stored, Event{Kind: EventAbort}, fleet(), now)
	if got := Reapply(rb); !reflect.DeepEqual(kinds(got), []ActionKind{ActRollBack, ActExpectAlerts}) {
		t.Fatalf("reapply after abort: %v", kinds(got))
	}
}

// The controller stores State as JSON; a state read back resumes exactly as the one
// written would have.
func TestStateJSONRoundTrip(t *testing.T) {
	s, _ := Start("hello", v1, v2, canarySpec(t, "1node@region=eu,manual,10%,100%"), fleet(), t0)
	s, _ = Step(s, Event{Kind: EventReady, Step: 0}, fleet(), t0)
	s, _ = Step(s, Event{Kind: EventPromote, Step: 0}, fleet(), t0)
	stable, canary := good()
	s, _, now := analyse(t, s, stable, canary, t0)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip changed the state:\n%+v\n%+v", back, s)
	}
	a1, acts1 := Step(s, Event{Kind: EventReady, Step: s.Step}, fleet(), now)
	a2, acts2 := Step(back, Event{Kind: EventReady, Step: s.Step}, fleet(), now)
	if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(acts1, acts2) {
		t.Fatal("a state read back steps differently")
	}
	if !strings.Contains(string(b), `"phase":"progressing"`) || !strings.Contains(string(b), `"canary_nodes":["n1"]`) {
		t.Errorf("unexpected encoding: %s", b)
	}
}

func TestStartNormalizes(t *testing.T) {
	st, err := ParseSteps("10%,100%")
	if err != nil {
		t.Fatal(err)
	}
	// Built in Go, without gates, interval or checks: Start fills them in.
	s, _ := Start("hello", v1, v2, Spec{Kind: Canary, Steps: st}, fleet(), t0)
	s, _ = Step(s, Event{Kind: EventReady, Step: 0}, fleet(), t0)
	if _, to, due := s.AnalysisDue(t0.Add(DefaultInterval)); !due || !to.Equal(t0.Add(DefaultInterval)) || s.Spec.Checks != DefaultChecks() {
		t.Fatalf("unnormalized spec: %+v", s)
	}
	s, acts := Start("hello", v1, v2, Spec{Kind: Canary}, fleet(), t0)
	if s.Phase != Failed || !strings.Contains(s.Reason, "a canary needs steps") || !slices.Contains(kinds(acts), ActRollBack) {
		t.Fatalf("invalid spec: %s %q %v", s.Phase, s.Reason, kinds(acts))
	}
}

func TestNoExtensions(t *testing.T) {
	spec := canarySpec(t, "10%,100%")
	spec.MaxExtensions = NoExtensions
	s, _ := Start("hello", v1, v2, spec, fleet(), t0)
	s, _ = Step(s, Event{Kind: EventReady, Step: 0}, fleet(), t0)
	low := traffic(71, 20, 0, 1)
	s, _ = Step(s, Event{Kind: EventObserved, Step: 0, Stable: low, Canary: low}, fleet(), s.WindowEnd)
	if s.Phase != RolledBack || !strings.Contains(s.Reason, "inconclusive after 0 extensions") {
		t.Fatalf("%s %q", s.Phase, s.Reason)
	}
}
