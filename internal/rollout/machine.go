package rollout

import (
	"fmt"
	"slices"
	"time"

	api "fermion.dev/fermion/api/v1"
)

// Phase is where a rollout stands.
type Phase string

const (
	// Progressing: the current step's actions are out; waiting for its nodes to
	// report the new version ready (EventReady).
	Progressing Phase = "progressing"
	// Analysing: the step is in place; its gate (analysis or pause) runs until
	// WindowEnd.
	Analysing Phase = "analysing"
	// Paused: stopped by `fermion rollout pause` or at a manual gate; Resume or
	// Promote moves on.
	Paused Phase = "paused"
	// Promoting: every step passed; the new version is going to every node.
	Promoting Phase = "promoting"
	// Terminal phases.
	Succeeded  Phase = "succeeded"
	RolledBack Phase = "rolled_back" // a step's analysis failed or stayed inconclusive
	Aborted    Phase = "aborted"     // `fermion rollout abort`
	Failed     Phase = "failed"      // a step could not be carried out (no node matched, warmup failed)
)

// Terminal reports whether nothing more happens in p.
func (p Phase) Terminal() bool {
	return p == Succeeded || p == RolledBack || p == Aborted || p == Failed
}

// Node is what the machine needs to know of a node to pick a step's subset.
type Node struct {
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// State is a rollout's recorded progress: the controller stores it (compare-and-swap)
// after every Step and before carrying out the actions, so a new leader resumes from
// it. Everything Step decides is in here; nothing depends on memory.
type State struct {
	App  string   `json:"app,omitempty"`
	From Revision `json:"from"`
	To   Revision `json:"to"`
	Spec Spec     `json:"spec"`
	// Plan is the steps resolved at start (a rolling update's batches depend on the
	// node count then).
	Plan  []Stage `json:"plan,omitempty"`
	Step  int     `json:"step,omitempty"` // index into Plan
	Phase Phase   `json:"phase,omitempty"`
	// Gated is true while Paused waits at a manual gate rather than for Resume.
	Gated bool `json:"gated,omitempty"`
	// Resume is the phase Resume returns to after a pause.
	Resume Phase `json:"resume,omitempty"`
	// CanaryNodes are the nodes running To in node steps, chosen once per step and
	// kept, so a resumed rollout uses the same ones.
	CanaryNodes []string `json:"canary_nodes,omitempty"`
	Weight      int      `json:"weight,omitempty"` // traffic weight of To on nodes running both, 0 in node steps
	// WindowStart and WindowEnd bound the current gate; an inconclusive analysis
	// moves WindowEnd one interval on (the window grows, keeping what it saw).
	WindowStart time.Time     `json:"window_start"`
	WindowEnd   time.Time     `json:"window_end"`
	Extensions  int           `json:"extensions,omitempty"`
	Verdicts    []StepVerdict `json:"verdicts,omitempty"`
	Reason      string        `json:"reason,omitempty"`
	Updated     time.Time     `json:"updated"`
}

// Revision names one revision of a deployment.
type Revision struct {
	Number  uint64 `json:"number,omitempty"`
	Version string `json:"version,omitempty"` // what the SLIs are keyed by
}

// StepVerdict records one analysis, for status and events.
type StepVerdict struct {
	Step     int       `json:"step,omitempty"`
	At       time.Time `json:"at,omitempty"`
	Analysis Analysis  `json:"analysis,omitempty"`
}

// EventKind says what happened.
type EventKind string

const (
	EventTick EventKind = "tick" // time passed; carries nothing
	// EventReady: the current step's nodes serve To, warm. It is level-triggered:
	// the controller sends it on every tick while they do, so one that arrives
	// during a pause or is lost in a failover is sent again.
	EventReady    EventKind = "ready"
	EventObserved EventKind = "observed" // samples for the window WindowStart–WindowEnd
	EventPromote  EventKind = "promote"  // user: pass the current gate
	EventAbort    EventKind = "abort"
	EventPause    EventKind = "pause"
	EventResume   EventKind = "resume"
	// EventStepFailed: the controller could not carry out the step (a warmup hook
	// failed, an agent refused the artifact); Reason says why.
	EventStepFailed EventKind = "step_failed"
)

// Event is an input to Step. Step names the step the event is about; an event for a
// step other than the current one is stale (a repeated delivery, a late reply after
// failover) and changes nothing.
type Event struct {
	Kind   EventKind
	Step   int
	Stable Sample // EventObserved
	Canary Sample
	Reason string
	By     string
}

// ActionKind says what the controller must do. Every action states a desired
// outcome rather than a change ("To runs on these nodes", not "add a node"), so
// carrying one out twice — after failover the new leader repeats the last step's
// actions — does the same as once.
type ActionKind string

const (
	ActSetNodes     ActionKind = "set_nodes"     // To on exactly Nodes, From elsewhere
	ActSetWeight    ActionKind = "set_weight"    // both on every node, Weight % to To
	ActExpectAlerts ActionKind = "expect_alerts" // SLO alerts of To expected (Expect) or not
	ActPromote      ActionKind = "promote"       // To on every node, From retired
	ActRollBack     ActionKind = "roll_back"     // From on every node, To retired
	ActRecord       ActionKind = "record"        // an event for status and the event log
)

// Action is one thing to do.
type Action struct {
	Kind     ActionKind
	Step     int
	Nodes    []string
	Weight   int
	Expect   bool
	Message  string
	Analysis *Analysis
}

// Start begins a rollout of app from one revision to another on nodes. It normalizes
// spec (defaults for what a spec built in Go left out); a spec that is invalid, or a
// first step that cannot be placed, fails the rollout at once (phase Failed, with a
// roll back that leaves From in place).
func Start(app string, from, to Revision, spec Spec, nodes []Node, now time.Time) (State, []Action) {
	norm, err := spec.Normalize()
	if err != nil {
		s := State{App: app, From: from, To: to, Spec: spec, Updated: now}
		return s.finish(Failed, err.Error(), now, nil)
	}
	spec = norm
	s := State{App: app, From: from, To: to, Spec: spec, Plan: slices.Clone(spec.Plan(len(nodes))), Updated: now}
	acts := []Action{
		{Kind: ActRecord, Message: fmt.Sprintf("rollout of %s from revision %d to %d started (%s, %s)", app, from.Number, to.Number, spec.Kind, api.Count(len(s.Plan), "step"))},
		{Kind: ActExpectAlerts, Expect: true},
	}
	return s.enter(0, nodes, now, acts)
}

// enter starts step i.
func (s State) enter(i int, nodes []Node, now time.Time, acts []Action) (State, []Action) {
	s.Step, s.Extensions, s.Gated = i, 0, false
	s.WindowStart, s.WindowEnd = time.Time{}, time.Time{}
	if i >= len(s.Plan) {
		s.Phase = Promoting
		return s, append(acts,
			Action{Kind: ActPromote, Step: i},
			Action{Kind: ActRecord, Step: i, Message: fmt.Sprintf("every step passed; promoting revision %d on every node", s.To.Number)})
	}
	st := s.Plan[i]
	s.Phase = Progressing
	if st.IsWeight() {
		s.Weight = st.Weight
		return s, append(acts,
			Action{Kind: ActSetWeight, Step: i, Weight: st.Weight},
			Action{Kind: ActRecord, Step: i, Message: fmt.Sprintf("step %d: %d%% of requests to revision %d", i+1, st.Weight, s.To.Number)})
	}
	picked, msg := pick(st, nodes, s.CanaryNodes)
	if msg != "" {
		return s.finish(Failed, fmt.Sprintf("step %d (%s): %s", i+1, st, msg), now, acts)
	}
	s.CanaryNodes, s.Weight = picked, 0
	return s, append(acts,
		Action{Kind: ActSetNodes, Step: i, Nodes: slices.Clone(picked)},
		Action{Kind: ActRecord, Step: i, Message: fmt.Sprintf("step %d: revision %d on %d node(s): %v", i+1, s.To.Number, len(picked), picked)})
}

// pick chooses a node step's nodes: those already running the canary first (a
// later step grows the subset, never moves it), then the rest in name order, so the
// choice is deterministic and a resumed rollout makes the same one.
func pick(st Stage, nodes []Node, already []string) ([]string, string) {
	var eligible []string
	for _, n := range nodes {
		ok := true
		for k, v := range st.Selector {
			if n.Labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			eligible = append(eligible, n.Name)
		}
	}
	if len(eligible) == 0 {
		if len(st.Selector) > 0 {
			return nil, fmt.Sprintf("selector %v matches none of the %s; fix the selector or label a node", st.Selector, api.Count(len(nodes), "node"))
		}
		return nil, "no node is eligible for the app"
	}
	slices.Sort(eligible)
	want := st.Nodes.Of(len(eligible))
	out := make([]string, 0, want)
	for _, n := range already {
		if len(out) < want && slices.Contains(eligible, n) {
			out = append(out, n)
		}
	}
	for _, n := range eligible {
		if len(out) < want && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, ""
}

// finish ends the rollout in a terminal phase.
func (s State) finish(p Phase, reason string, now time.Time, acts []Action) (State, []Action) {
	s.Phase, s.Reason, s.Updated, s.Gated = p, reason, now, false
	if p != Succeeded {
		acts = append(acts, Action{Kind: ActRollBack, Step: s.Step})
	}
	return s, append(acts,
		Action{Kind: ActExpectAlerts, Step: s.Step, Expect: false},
		Action{Kind: ActRecord, Step: s.Step, Message: fmt.Sprintf("rollout %s: %s", p, reason)})
}

// interval is step i's gate length.
func (s State) interval() time.Duration {
	if d := s.Plan[s.Step].Interval; d > 0 {
		return d
	}
	return s.Spec.Interval
}

// AnalysisDue reports whether the current step waits on an analysis whose window
// has closed by now, and the window [from, to) to sample for EventObserved.
func (s State) AnalysisDue(now time.Time) (from, to time.Time, due bool) {
	if s.Phase != Analysing || s.Step >= len(s.Plan) || s.Plan[s.Step].Gate != GateAnalysis {
		return time.Time{}, time.Time{}, false
	}
	return s.WindowStart, s.WindowEnd, !now.Before(s.WindowEnd)
}

// Step applies ev at now and returns the new state and what the controller must do.
// nodes are the app's eligible nodes now (used when a node step starts). Step is a
// pure function: the same state and event give the same result, and events that do
// not apply (stale step, terminal rollout, resume when not paused) return the state
// unchanged with no actions.
func Step(s State, ev Event, nodes []Node, now time.Time) (State, []Action) {
	if s.Phase.Terminal() {
		return s, nil
	}
	s.Plan, s.Verdicts, s.CanaryNodes = slices.Clone(s.Plan), slices.Clone(s.Verdicts), slices.Clone(s.CanaryNodes)
	switch ev.Kind {
	case EventAbort:
		return s.finish(Aborted, "aborted by "+who(ev.By), now, nil)
	case EventPause:
		if s.Phase == Paused || s.Phase == Promoting {
			return s, nil
		}
		s.Resume, s.Phase, s.Updated = s.Phase, Paused, now
		return s, []Action{{Kind: ActRecord, Step: s.Step, Message: "paused by " + who(ev.By)}}
	case EventResume:
		if s.Phase != Paused || s.Gated {
			return s, nil
		}
		s.Phase, s.Updated = s.Resume, now
		if s.Phase == Analysing {
			// Time paused is not a window: restart it.
			s.WindowStart, s.WindowEnd = now, now.Add(s.interval())
		}
		return s, []Action{{Kind: ActRecord, Step: s.Step, Message: "resumed by " + who(ev.By)}}
	case EventPromote:
		if ev.Step != s.Step || s.Phase == Promoting || (s.Phase == Paused && !s.Gated) {
			return s, nil
		}
		s.Updated = now
		return s.enter(s.Step+1, nodes, now, []Action{{Kind: ActRecord, Step: s.Step, Message: fmt.Sprintf("step %d promoted by %s", s.Step+1, who(ev.By))}})
	case EventStepFailed:
		if ev.Step != s.Step {
			return s, nil
		}
		return s.finish(Failed, fmt.Sprintf("step %d: %s", s.Step+1, ev.Reason), now, nil)
	case EventReady:
		if ev.Step != s.Step {
			return s, nil
		}
		if s.Phase == Promoting {
			return s.finish(Succeeded, fmt.Sprintf("revision %d serves on every node", s.To.Number), now, nil)
		}
		if s.Phase != Progressing {
			return s, nil
		}
		s.Updated = now
		switch s.Plan[s.Step].Gate {
		case GateManual:
			s.Phase, s.Gated, s.Resume = Paused, true, Analysing
			return s, []Action{{Kind: ActRecord, Step: s.Step, Message: fmt.Sprintf("step %d in place; waiting for fermion rollout promote", s.Step+1)}}
		case GateNone:
			return s.enter(s.Step+1, nodes, now, nil)
		default:
			s.Phase = Analysing
			s.WindowStart, s.WindowEnd = now, now.Add(s.interval())
			return s, nil
		}
	case EventTick:
		if s.Phase == Analysing && s.Plan[s.Step].Gate == GatePause && !now.Before(s.WindowEnd) {
			return s.enter(s.Step+1, nodes, now, nil)
		}
		return s, nil
	case EventObserved:
		if _, _, due := s.AnalysisDue(now); !due || ev.Step != s.Step {
			return s, nil
		}
		a := Analyse(s.Spec.Checks, ev.Stable, ev.Canary)
		s.Verdicts = append(s.Verdicts, StepVerdict{Step: s.Step, At: now, Analysis: a})
		s.Updated = now
		rec := Action{Kind: ActRecord, Step: s.Step, Analysis: &a, Message: fmt.Sprintf("step %d analysis: %s", s.Step+1, a)}
		switch a.Result {
		case Pass:
			return s.enter(s.Step+1, nodes, now, []Action{rec})
		case Fail:
			return s.finish(RolledBack, fmt.Sprintf("step %d failed analysis: %s", s.Step+1, a), now, []Action{rec})
		default:
			if s.Extensions >= max(s.Spec.MaxExtensions, 0) {
				return s.finish(RolledBack, fmt.Sprintf("step %d inconclusive after %s: %s", s.Step+1, api.Count(s.Extensions, "extension"), a), now, []Action{rec})
			}
			s.Extensions++
			s.WindowEnd = s.WindowEnd.Add(s.interval())
			rec.Message += fmt.Sprintf("; extending the step (%d of %d)", s.Extensions, s.Spec.MaxExtensions)
			return s, []Action{rec}
		}
	}
	return s, nil
}

// Reapply returns the actions that put the fleet where s says it is, for a leader
// taking over: they are desired states, so repeating ones already carried out is
// harmless, and a rollout that ended keeps its outcome (a rolled back one is rolled
// back again, never promoted).
func Reapply(s State) []Action {
	switch {
	case s.Phase == Succeeded || s.Phase == Promoting:
		return []Action{{Kind: ActPromote, Step: s.Step}}
	case s.Phase.Terminal():
		return []Action{{Kind: ActRollBack, Step: s.Step}, {Kind: ActExpectAlerts, Step: s.Step, Expect: false}}
	case s.Weight > 0:
		return []Action{{Kind: ActExpectAlerts, Step: s.Step, Expect: true}, {Kind: ActSetWeight, Step: s.Step, Weight: s.Weight}}
	default:
		return []Action{{Kind: ActExpectAlerts, Step: s.Step, Expect: true}, {Kind: ActSetNodes, Step: s.Step, Nodes: slices.Clone(s.CanaryNodes)}}
	}
}

func who(by string) string {
	if by == "" {
		return "an operator"
	}
	return by
}
