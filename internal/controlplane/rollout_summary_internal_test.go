package controlplane

import (
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/rollout"
)

// TestRolloutSummary: status views show a rollout while it governs the deployment's
// current change, and its outcome for rolloutOutcomeShown after it ended unless the
// deployment changed since by other hands.
func TestRolloutSummary(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	spec, err := rollout.FromAPI(&v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"1node", "10%", "50%", "100%"}, Interval: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []rollout.Node{{Name: "edge-1"}, {Name: "edge-2"}}
	start, _ := rollout.Start("hello", rollout.Revision{Number: 3, Version: "1.0.0"}, rollout.Revision{Number: 4, Version: "2.0.0"}, spec, nodes, t0)
	record := func(edit func(*rollout.State)) state.Rollout {
		s := start
		s.Plan = append([]rollout.Stage(nil), start.Plan...)
		edit(&s)
		return state.Rollout{Deployment: "hello", Change: 4, FromNumber: 3, From: v1.Version{Version: "1.0.0", Digest: "sha256:11"},
			To: v1.Version{Version: "2.0.0", Digest: "sha256:22"}, State: s, Started: t0}
	}
	rolling := v1.Deployment{Name: "hello", Change: &v1.Change{Number: 4, Cause: v1.CauseDeploy, Time: t0},
		Stable: &v1.StableRevision{Number: 3}}
	promoted := v1.Deployment{Name: "hello", Change: &v1.Change{Number: 4, Cause: v1.CauseDeploy, Time: t0}}
	returned := v1.Deployment{Name: "hello", Change: &v1.Change{Number: 5, Cause: v1.CauseRollback, RollbackOf: 3, Time: t0.Add(3 * time.Minute)}}
	redeployed := v1.Deployment{Name: "hello", Change: &v1.Change{Number: 6, Cause: v1.CauseDeploy, Time: t0.Add(4 * time.Minute)}}
	deleting := rolling
	deleting.Deleting = true
	atStep := func(step, weight int, phase rollout.Phase) func(*rollout.State) {
		return func(s *rollout.State) {
			s.Step, s.Weight, s.Phase, s.Updated = step, weight, phase, t0.Add(time.Minute)
		}
	}
	ended := func(phase rollout.Phase, reason string) func(*rollout.State) {
		return func(s *rollout.State) {
			s.Step, s.Phase, s.Reason, s.Updated = 1, phase, reason, t0.Add(3*time.Minute)
		}
	}
	tests := []struct {
		name string
		d    v1.Deployment
		ro   state.Rollout
		now  time.Time
		want string // Describe(), "" for no summary
	}{
		{"step 2 of 4", rolling, record(atStep(1, 10, rollout.Analysing)), t0.Add(2 * time.Minute), "rolling out: step 2/4 (10%) canary 2.0.0"},
		{"paused at a manual gate", rolling, record(func(s *rollout.State) {
			atStep(2, 50, rollout.Paused)(s)
			s.Gated = true
			s.Plan[2].Gate = rollout.GateManual
		}), t0.Add(2 * time.Minute), "rolling out: step 3/4 (50%, manual) canary 2.0.0, paused at a manual gate"},
		{"paused by an operator", rolling, record(atStep(0, 0, rollout.Paused)), t0.Add(2 * time.Minute), "rolling out: step 1/4 (1node) canary 2.0.0, paused"},
		{"promoting", rolling, record(atStep(3, 100, rollout.Promoting)), t0.Add(2 * time.Minute), "rolling out: promoting 2.0.0 to every node"},
		{"live for an hour still shows", rolling, record(atStep(1, 10, rollout.Analysing)), t0.Add(time.Hour), "rolling out: step 2/4 (10%) canary 2.0.0"},
		{"succeeded, just now", promoted, record(ended(rollout.Succeeded, "revision 4 serves on every node")), t0.Add(5 * time.Minute), "rolled out: 2.0.0 on every node"},
		{"succeeded, long ago", promoted, record(ended(rollout.Succeeded, "")), t0.Add(3*time.Minute + rolloutOutcomeShown + time.Second), ""},
		{"rolled back, before the return is written", rolling, record(ended(rollout.RolledBack, "step 2 failed analysis")), t0.Add(5 * time.Minute),
			"rolled back at step 2/4 (10%) to 1.0.0: step 2 failed analysis"},
		{"rolled back, returned", returned, record(ended(rollout.RolledBack, "step 2 failed analysis")), t0.Add(5 * time.Minute),
			"rolled back at step 2/4 (10%) to 1.0.0: step 2 failed analysis"},
		{"aborted, returned", returned, record(ended(rollout.Aborted, "aborted by token abc (wrong build)")), t0.Add(5 * time.Minute),
			"rollout aborted at step 2/4 (10%), back to 1.0.0: aborted by token abc (wrong build)"},
		{"failed, returned", returned, record(ended(rollout.Failed, "node edge-1: warmup: 500")), t0.Add(5 * time.Minute),
			"rollout failed at step 2/4 (10%), back to 1.0.0: node edge-1: warmup: 500"},
		{"failed while promoting", returned, record(func(s *rollout.State) {
			ended(rollout.Failed, "node edge-2: warmup: 500")(s)
			s.Step = len(s.Plan)
		}), t0.Add(5 * time.Minute), "rollout failed while promoting, back to 1.0.0: node edge-2: warmup: 500"},
		{"rolled back, then deployed again", redeployed, record(ended(rollout.RolledBack, "step 2 failed analysis")), t0.Add(5 * time.Minute), ""},
		{"a rollback to another revision", v1.Deployment{Name: "hello", Change: &v1.Change{Number: 5, Cause: v1.CauseRollback, RollbackOf: 2, Time: t0.Add(3 * time.Minute)}},
			record(ended(rollout.RolledBack, "x")), t0.Add(5 * time.Minute), ""},
		{"a record of an older change", v1.Deployment{Name: "hello", Change: &v1.Change{Number: 7}, Stable: &v1.StableRevision{Number: 6}},
			record(atStep(1, 10, rollout.Analysing)), t0.Add(2 * time.Minute), ""},
		{"no stable revision: no rollout governs it", promoted, record(atStep(1, 10, rollout.Analysing)), t0.Add(2 * time.Minute), ""},
		{"two builds of one version", rolling, func() state.Rollout {
			ro := record(atStep(1, 10, rollout.Analysing))
			ro.From.Version = "2.0.0"
			return ro
		}(), t0.Add(2 * time.Minute), "rolling out: step 2/4 (10%) canary 2.0.0 (revision 4)"},
		{"deleting", deleting, record(atStep(1, 10, rollout.Analysing)), t0.Add(2 * time.Minute), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rolloutSummary(&tt.d, tt.ro, tt.now)
			switch {
			case tt.want == "" && got != nil:
				t.Fatalf("got %+v (%q), want none", got, got.Describe())
			case tt.want == "":
				return
			case got == nil:
				t.Fatalf("got none, want %q", tt.want)
			}
			if d := got.Describe(); d != tt.want {
				t.Errorf("Describe() = %q, want %q", d, tt.want)
			}
			if got.Steps != 4 || got.From.Number != 3 || got.To.Number != 4 || got.To.Digest != "sha256:22" || got.Terminal != tt.ro.State.Phase.Terminal() {
				t.Errorf("summary %+v", got)
			}
		})
	}
}

// TestStepText: a resolved step as status views write it, a batch of one node
// counted as one.
func TestStepText(t *testing.T) {
	for _, tt := range []struct {
		name string
		kind rollout.Kind
		i    int
		st   rollout.Stage
		want string
	}{
		{"rolling batch of one", rollout.Rolling, 0, rollout.Stage{Nodes: rollout.Amount{Count: 1}}, "batch 1: 1 node"},
		{"rolling batch of three", rollout.Rolling, 1, rollout.Stage{Nodes: rollout.Amount{Count: 3}}, "batch 2: 3 nodes"},
		{"all at once", rollout.AllAtOnce, 0, rollout.Stage{}, "every node"},
		{"canary weight", rollout.Canary, 0, rollout.Stage{Weight: 10}, "10%"},
		{"canary node at a manual gate", rollout.Canary, 0, rollout.Stage{Nodes: rollout.Amount{Count: 1}, Gate: rollout.GateManual}, "1node, manual"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := stepText(tt.kind, tt.i, tt.st); got != tt.want {
				t.Errorf("stepText = %q, want %q", got, tt.want)
			}
		})
	}
}
