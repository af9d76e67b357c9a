package slo

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// sim drives Evaluate with a fake clock: every step it records one interval of counts
// per series, evaluates, and keeps every transition with the time it happened.
type sim struct {
	t     *testing.T
	iv    *Intervals
	specs []Spec
	st    State
	now   time.Time
	step  time.Duration
	log   []stamped
}

type stamped struct {
	at time.Time
	Transition
}

func newSim(t *testing.T, step time.Duration, specs ...Spec) *sim {
	t.Helper()
	for i := range specs {
		if err := specs[i].Validate(); err != nil {
			t.Fatal(err)
		}
	}
	return &sim{t: t, iv: NewIntervals(), specs: specs, now: t0, step: step}
}

// traffic gives each series' counts for the interval ending at now.
type traffic func(now time.Time) map[Series]Counts

func (s *sim) run(d time.Duration, tr traffic) {
	s.t.Helper()
	for end := s.now.Add(d); s.now.Before(end); {
		s.now = s.now.Add(s.step)
		for se, c := range tr(s.now) {
			if err := s.iv.Add(se, s.specs[0].Scope.Per, s.specs[0].SLI, s.now, c); err != nil {
				s.t.Fatal(err)
			}
		}
		var ts []Transition
		s.st, ts = Evaluate(s.st, s.specs, s.iv, s.now)
		for _, tr := range ts {
			s.log = append(s.log, stamped{s.now, tr})
		}
	}
}

// first returns when the first transition to phase of a severity for a series' scope
// happened, and whether it did.
func (s *sim) first(to Phase, sev Severity, scope string) (time.Time, bool) {
	for _, l := range s.log {
		if l.To == to && l.Alert.Severity == sev && (scope == "" || l.Alert.Scope == scope) {
			return l.at, true
		}
	}
	return time.Time{}, false
}

func (s *sim) count(to Phase, sev Severity) int {
	n := 0
	for _, l := range s.log {
		if l.To == to && l.Alert.Severity == sev {
			n++
		}
	}
	return n
}

func spec999(per ScopeKind, preset string) Spec {
	return Spec{Name: "hello-availability", App: "hello", SLI: SLI{Kind: Availability}, Objective: Ratio{999, 1000},
		Window: 30 * 24 * time.Hour, Scope: Scope{Per: per}, Preset: preset, Tiers: presetCopy(preset),
		Runbook: "https://runbooks.example/hello"}
}

// steady is a traffic of n requests per interval with bad of them failing per series.
func steady(n, bad int64, series ...Series) traffic {
	return func(time.Time) map[Series]Counts {
		m := map[Series]Counts{}
		for _, s := range series {
			m[s] = Counts{Good: n - bad, Total: n}
		}
		return m
	}
}

func nodeSeries(node string) Series { return Series{App: "hello", Version: "v1", Scope: node} }

func TestAtLeastExact(t *testing.T) {
	o := Ratio{999, 1000}
	tests := []struct {
		bad, total int64
		factor     Ratio
		want       bool
	}{
		{144, 10000, Ratio{144, 10}, true},              // exactly 14.4×: 1.44 % against 99.9 %
		{14399, 1000000, Ratio{144, 10}, false},         // 14.399×
		{1000, 100000, Ratio{144, 10}, false},           // 10×
		{1000, 100000, Ratio{6, 1}, true},               // 10× ≥ 6×
		{3, 1000, Ratio{3, 1}, true},                    // exactly 3×
		{0, 1000, Ratio{1, 1}, false},                   // no errors
		{0, 0, Ratio{1, 1}, false},                      // no traffic
		{1 << 40, 1 << 41, Ratio{500, 1}, true},         // large counts: 500×
		{1<<62 - 1, 1<<62 - 1, Ratio{1000, 1}, true},    // all bad at the largest counts: 1000×
		{1<<62 - 1, 1<<62 - 1, Ratio{10001, 10}, false}, // 1000× < 1000.1×
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d>=%s", tt.bad, tt.total, tt.factor), func(t *testing.T) {
			c := Counts{Good: tt.total - tt.bad, Total: tt.total}
			if got := AtLeast(c, o, tt.factor); got != tt.want {
				t.Errorf("AtLeast = %v, want %v (burn %.6f)", got, tt.want, BurnRate(c, o))
			}
		})
	}
}

func TestNodeBurn1000xPagesWithinAMinute(t *testing.T) {
	s := newSim(t, 10*time.Second, spec999(ScopeNode, "workbook"))
	n1, n2, n3 := nodeSeries("n1"), nodeSeries("n2"), nodeSeries("n3")
	s.run(2*time.Hour, steady(100, 0, n1, n2, n3))
	start := s.now
	// n2 fails every request; the others stay healthy.
	s.run(10*time.Minute, func(now time.Time) map[Series]Counts {
		return map[Series]Counts{n1: {100, 100}, n2: {0, 100}, n3: {100, 100}}
	})
	at, ok := s.first(Firing, Page, "n2")
	if !ok {
		t.Fatal("no page for n2")
	}
	// 14.4× over 1 h needs 1.44 % of an hour's requests bad: 52 s of total failure,
	// so the page fires at the sixth 10 s evaluation.
	if d := at.Sub(start); d > time.Minute {
		t.Errorf("page after %v, want within one minute", d)
	}
	for _, l := range s.log {
		if l.Alert.Scope != "n2" {
			t.Errorf("alert for healthy node: %+v", l.Alert)
		}
	}
	a := s.st.Alerts[AlertID{Key{"hello-availability", "hello", "v1", "n2"}, Page}]
	if a.Phase != Firing || a.Runbook != "https://runbooks.example/hello" || a.Tier.Factor != (Ratio{144, 10}) {
		t.Errorf("alert %+v", a)
	}
	if got := s.count(Firing, Page); got != 1 {
		t.Errorf("%d page transitions while firing for 10 min, want 1 (dedup)", got)
	}

	// The errors stop. The 14.4× tier clears with its 5 min reset window, but 10 min
	// of total failure keep the 6× tier (6 h and 30 min) burning until they leave its
	// 30 min window.
	stop := s.now
	s.run(40*time.Minute, steady(100, 0, n1, n2, n3))
	res, ok := s.first(Resolved, Page, "n2")
	if !ok {
		t.Fatal("page never resolved")
	}
	// 6× over 30 min is 0.6 % bad: one 10 s interval of total failure in 30 min is
	// 0.56 %, so the page resolves when only one is left in the window.
	if d := res.Sub(stop); d != 30*time.Minute-10*time.Second {
		t.Errorf("resolved %v after the errors stopped, want 29m50s", d)
	}
	if _, ok := s.st.Alerts[a.AlertID]; !ok {
		t.Error("resolved alert dropped before ResolvedRetention")
	}
	s.run(ResolvedRetention, steady(100, 0, n1, n2, n3))
	if _, ok := s.st.Alerts[a.AlertID]; ok {
		t.Error("resolved page kept past ResolvedRetention")
	}
	// Held back while the page fired, the ticket now fires: 10 min of total failure
	// is a 6.9× burn over the ticket tier's day.
	if tk := s.st.Alerts[AlertID{a.Key, Ticket}]; tk.Phase != Firing || tk.Tier.Factor != (Ratio{3, 1}) {
		t.Errorf("ticket after the page resolved: %+v", tk)
	}
}

func TestBurn20xPagesAfter43Minutes(t *testing.T) {
	s := newSim(t, 10*time.Second, spec999(ScopeGlobal, "workbook"))
	g := Series{App: "hello", Version: "v1", Scope: "global"}
	s.run(3*time.Hour, steady(1000, 0, g))
	start := s.now
	s.run(time.Hour, steady(1000, 20, g)) // 2 % errors: 20× against 99.9 %
	at, ok := s.first(Firing, Page, "")
	if !ok {
		t.Fatal("no page")
	}
	// 1 h × 14.4 / 20 = 43.2 min: the 1 h window reaches 1.44 % at the 260th interval.
	if d := at.Sub(start); d < 42*time.Minute || d > 44*time.Minute {
		t.Errorf("page after %v, want 42–44 min", d)
	}
	if a := s.st.Alerts[AlertID{Key{"hello-availability", "hello", "v1", "global"}, Page}]; a.Long < 14.4 || a.Short < 19.99 {
		t.Errorf("burn rates %v/%v", a.Long, a.Short)
	}
}

func TestExactBoundary(t *testing.T) {
	only144 := spec999(ScopeGlobal, "workbook")
	only144.Tiers = only144.Tiers[:1]
	g := Series{App: "hello", Version: "v1", Scope: "global"}
	for _, tc := range []struct {
		name     string
		bad, n   int64
		wantPage bool
	}{
		{"exactly 14.4x pages", 144, 10000, true},
		{"14.399x does not", 14399, 1000000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 10*time.Second, only144)
			s.run(2*time.Hour, steady(tc.n, tc.bad, g))
			if _, ok := s.first(Firing, Page, ""); ok != tc.wantPage {
				t.Errorf("paged = %v, want %v", ok, tc.wantPage)
			}
		})
	}
}

func TestBurn10x(t *testing.T) {
	g := Series{App: "hello", Version: "v1", Scope: "global"}
	t.Run("seed preset tickets and never pages", func(t *testing.T) {
		s := newSim(t, 10*time.Second, spec999(ScopeGlobal, "seed"))
		s.run(time.Hour, steady(1000, 0, g))
		start := s.now
		s.run(8*time.Hour, steady(1000, 10, g)) // 1 %: 10×
		if _, ok := s.first(Firing, Page, ""); ok {
			t.Error("a 10× burn paged under the seed preset")
		}
		if _, ok := s.first(Pending, Page, ""); ok {
			t.Error("a 10× burn made a page pending")
		}
		at, ok := s.first(Firing, Ticket, "")
		if !ok {
			t.Fatal("no ticket")
		}
		// 4× over 1 h needs 24 min of 10×; then For is 15 min.
		if d := at.Sub(start); d < 38*time.Minute || d > 40*time.Minute {
			t.Errorf("ticket after %v, want 24 min + 15 min for", d)
		}
		if p, ok := s.first(Pending, Ticket, ""); !ok || at.Sub(p) != 15*time.Minute {
			t.Errorf("pending at %v, firing at %v: want For = 15 min between", p, at)
		}
	})
	t.Run("workbook preset tickets then pages through its 6x tier", func(t *testing.T) {
		s := newSim(t, time.Minute, spec999(ScopeGlobal, "workbook"))
		s.run(24*time.Hour, steady(1000, 0, g))
		start := s.now
		s.run(5*time.Hour, steady(1000, 10, g))
		at, ok := s.first(Firing, Page, "")
		if !ok {
			t.Fatal("no page")
		}
		// 6× over 6 h needs 6 h × 6 / 10 = 3.6 h of 10×.
		if d := at.Sub(start); d != 216*time.Minute {
			t.Errorf("page after %v, want 3h36m", d)
		}
		if s.st.Alerts[AlertID{Key{"hello-availability", "hello", "v1", "global"}, Page}].Tier.Factor != (Ratio{6, 1}) {
			t.Error("page not from the 6× tier")
		}
	})
}

func TestSeedPageIsPendingForFiveMinutes(t *testing.T) {
	s := newSim(t, 10*time.Second, spec999(ScopeGlobal, "seed"))
	g := Series{App: "hello", Version: "v1", Scope: "global"}
	s.run(time.Hour, steady(1000, 0, g))
	s.run(30*time.Minute, steady(1000, 500, g)) // 500×
	p, ok1 := s.first(Pending, Page, "")
	f, ok2 := s.first(Firing, Page, "")
	if !ok1 || !ok2 || f.Sub(p) != 5*time.Minute {
		t.Errorf("pending %v (%v), firing %v (%v): want 5 min apart", p, ok1, f, ok2)
	}
	// While the page fires, the key's ticket is held back.
	if _, ok := s.first(Firing, Ticket, ""); ok {
		t.Error("ticket fired beside the page")
	}
}

func TestPendingClearsWithoutFiring(t *testing.T) {
	sp := spec999(ScopeGlobal, "seed")
	sp.Tiers[0].For = 10 * time.Minute
	s := newSim(t, 10*time.Second, sp)
	g := Series{App: "hello", Version: "v1", Scope: "global"}
	s.run(time.Hour, steady(1000, 0, g))
	s.run(2*time.Minute, steady(1000, 1000, g)) // burns ≥ 14× on both windows for ~7 min < For
	s.run(time.Hour, steady(1000, 0, g))
	if _, ok := s.first(Pending, Page, ""); !ok {
		t.Fatal("spike never made the page pending")
	}
	if _, ok := s.first(Firing, Page, ""); ok {
		t.Error("a spike shorter than For fired")
	}
	if len(s.st.Alerts) != 0 {
		t.Errorf("alerts left: %v", s.st.Alerts)
	}
}

func TestExpectedMarkAndGrouping(t *testing.T) {
	avail := spec999(ScopeGlobal, "workbook")
	other := avail
	other.Name, other.App = "api-availability", "api"
	s := newSim(t, 10*time.Second, avail, other)
	s.iv.Match = func(sp *Spec, se Series) bool { return se.App == sp.App }
	stable := Series{App: "hello", Version: "v1", Scope: "global"}
	canary := Series{App: "hello", Version: "v2", Scope: "global"}
	api := Series{App: "api", Version: "v7", Scope: "global"}
	s.run(time.Hour, steady(1000, 0, stable, canary, api))
	s.st = s.st.MarkExpected("hello", "v2", s.now.Add(30*time.Minute))
	s.run(5*time.Minute, steady(1000, 0, stable, api))
	s.run(5*time.Minute, func(time.Time) map[Series]Counts {
		return map[Series]Counts{stable: {1000, 1000}, canary: {0, 1000}, api: {1000, 1000}}
	})
	cp := s.st.Alerts[AlertID{Key{"hello-availability", "hello", "v2", "global"}, Page}]
	if cp.Phase != Firing || !cp.Expected || cp.Notify() {
		t.Errorf("canary page %+v: want firing, expected, not notifying", cp)
	}
	if len(Incidents(s.st)) != 0 {
		t.Errorf("incidents for an expected page only: %+v", Incidents(s.st))
	}
	// The stable version and another app start failing: they page, grouped per app.
	s.run(5*time.Minute, func(time.Time) map[Series]Counts {
		return map[Series]Counts{stable: {0, 1000}, canary: {0, 1000}, api: {0, 1000}}
	})
	sp := s.st.Alerts[AlertID{Key{"hello-availability", "hello", "v1", "global"}, Page}]
	if sp.Phase != Firing || sp.Expected || !sp.Notify() {
		t.Errorf("stable page %+v: want firing and notifying", sp)
	}
	inc := Incidents(s.st)
	if len(inc) != 2 || inc[0].App != "api" || inc[1].App != "hello" || len(inc[1].Alerts) != 2 ||
		inc[1].Severity != Page || len(inc[1].Runbooks) != 1 {
		t.Fatalf("incidents %+v", inc)
	}
	// The mark expires: the canary's page notifies from then on.
	s.run(30*time.Minute, func(time.Time) map[Series]Counts {
		return map[Series]Counts{stable: {0, 1000}, canary: {0, 1000}, api: {0, 1000}}
	})
	if cp := s.st.Alerts[cp.AlertID]; cp.Expected || !cp.Notify() || len(s.st.Marks) != 0 {
		t.Errorf("after the mark expired: %+v, marks %v", cp, s.st.Marks)
	}
	if got := s.count(Firing, Page); got != 3 {
		t.Errorf("%d page firings, want one per key (3)", got)
	}
}

func TestEvaluateIsPure(t *testing.T) {
	s := newSim(t, 10*time.Second, spec999(ScopeGlobal, "workbook"))
	g := Series{App: "hello", Version: "v1", Scope: "global"}
	s.run(time.Hour, steady(100, 100, g))
	before := s.st
	n := len(before.Alerts)
	a1, t1 := Evaluate(before, s.specs, s.iv, s.now.Add(time.Hour))
	a2, t2 := Evaluate(before, s.specs, s.iv, s.now.Add(time.Hour))
	if len(before.Alerts) != n || before.Alerts[AlertID{Key{"hello-availability", "hello", "v1", "global"}, Page}].Phase != Firing {
		t.Error("Evaluate changed the state it was given")
	}
	if fmt.Sprint(a1, t1) != fmt.Sprint(a2, t2) {
		t.Error("same inputs, different results")
	}
	// The spec is removed: its alert resolves rather than firing forever.
	_, ts := Evaluate(before, nil, s.iv, s.now.Add(10*time.Second))
	if len(ts) != 1 || ts[0].To != Resolved {
		t.Errorf("transitions after removing the spec: %+v", ts)
	}
}

func TestBudgetsAndIntervals(t *testing.T) {
	sp := spec999(ScopeNode, "workbook")
	iv := NewIntervals()
	n1 := nodeSeries("n1")
	// Intervals of mixed length, one arriving late (a backfill).
	iv.Add(n1, ScopeNode, sp.SLI, t0.Add(time.Minute), Counts{Good: 9990, Total: 10000})
	iv.Add(n1, ScopeNode, sp.SLI, t0.Add(3*time.Minute), Counts{Good: 4990, Total: 5000})
	iv.Add(n1, ScopeNode, sp.SLI, t0.Add(2*time.Minute), Counts{Good: 4995, Total: 5000})
	if c := iv.Counts(n1, sp.SLI, t0, t0.Add(3*time.Minute)); c != (Counts{19975, 20000}) {
		t.Errorf("counts %+v", c)
	}
	if c := iv.Counts(n1, sp.SLI, t0.Add(time.Minute), t0.Add(2*time.Minute)); c != (Counts{4995, 5000}) {
		t.Errorf("window (1m, 2m]: %+v", c)
	}
	rs := Budgets([]Spec{sp}, iv, t0.Add(3*time.Minute))
	if len(rs) != 1 {
		t.Fatalf("reports %+v", rs)
	}
	r := rs[0]
	// 25 bad of 20,000 against an allowance of 20: 1.25× burn, budget overspent by a quarter.
	if r.Counts.Bad() != 25 || r.Allowed != 20 || fmt.Sprintf("%.4f %.4f", r.Burn, r.Remaining) != "1.2500 -0.2500" {
		t.Errorf("budget %+v", r)
	}
	if empty := Budget(&sp, iv, nodeSeries("n9"), t0); empty.Remaining != 1 || empty.Burn != 0 {
		t.Errorf("budget without traffic %+v", empty)
	}
	for _, bad := range []Counts{{Good: -1, Total: 5}, {Good: 6, Total: 5}, {Good: 0, Total: 1<<53 + 1}} {
		if err := iv.Add(n1, ScopeNode, sp.SLI, t0.Add(4*time.Minute), bad); err == nil || !strings.Contains(err.Error(), "0 ≤ good ≤ total") {
			t.Errorf("Add(%+v) = %v", bad, err)
		}
	}
	if c := iv.Counts(n1, sp.SLI, t0, t0.Add(time.Hour)); c != (Counts{19975, 20000}) {
		t.Errorf("refused intervals were recorded: %+v", c)
	}
}

func TestIntervalsMatchSelectsSeries(t *testing.T) {
	sp := spec999(ScopeRegion, "workbook")
	sp.App, sp.Selector = "", map[string]string{"team": "web"}
	team := map[string]string{"hello": "web", "api": "web", "batch": "data"}
	iv := NewIntervals()
	iv.Match = func(sp *Spec, s Series) bool { return team[s.App] == sp.Selector["team"] }
	for _, app := range []string{"hello", "api", "batch"} {
		if err := iv.Add(Series{App: app, Version: "v1", Scope: "eu"}, ScopeRegion, sp.SLI, t0.Add(time.Minute), Counts{Good: 10, Total: 10}); err != nil {
			t.Fatal(err)
		}
	}
	// A node-scoped series of a matching app is not a region series.
	_ = iv.Add(Series{App: "hello", Version: "v1", Scope: "n1"}, ScopeNode, sp.SLI, t0.Add(time.Minute), Counts{Good: 10, Total: 10})
	rs := Budgets([]Spec{sp}, iv, t0.Add(time.Hour))
	if len(rs) != 2 || rs[0].Series.App != "api" || rs[1].Series.App != "hello" || rs[1].Series.Scope != "eu" {
		t.Errorf("budgets %+v", rs)
	}
}

func TestUnmarkAndSummary(t *testing.T) {
	s := newSim(t, 10*time.Second, spec999(ScopeGlobal, "workbook"))
	g := Series{App: "hello", Version: "v2", Scope: "global"}
	s.st = s.st.MarkExpected("hello", "v2", t0.Add(24*time.Hour))
	marked := s.st
	s.run(10*time.Minute, steady(1000, 1000, g))
	id := AlertID{Key{"hello-availability", "hello", "v2", "global"}, Page}
	if a := s.st.Alerts[id]; !a.Expected || a.Notify() {
		t.Fatalf("marked page %+v", a)
	}
	s.st = s.st.Unmark("hello", "v2")
	if len(marked.Marks) != 1 {
		t.Error("Unmark changed the state it was given")
	}
	s.run(10*time.Second, steady(1000, 1000, g))
	a := s.st.Alerts[id]
	if a.Expected || !a.Notify() {
		t.Errorf("unmarked page %+v", a)
	}
	want := "SLO hello-availability for hello v2 (global) burns its error budget at 1000.0× over 1h and 1000.0× over 5m (page at ≥ 14.4×)"
	if got := a.Summary(); got != want {
		t.Errorf("summary\n%s\nwant\n%s", got, want)
	}
}

func TestValidate(t *testing.T) {
	ok := spec999(ScopeNode, "seed")
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{"bad name", func(s *Spec) { s.Name = "Bad Name" }, "name"},
		{"app and selector", func(s *Spec) { s.Selector = map[string]string{"a": "b"} }, "exactly one of app and selector"},
		{"latency without threshold", func(s *Spec) { s.SLI = SLI{Kind: Latency} }, "sli"},
		{"no objective", func(s *Spec) { s.Objective = Ratio{} }, "objective is missing"},
		{"objective 100", func(s *Spec) { s.Objective = Ratio{1000, 1000} }, "below 100 %"},
		{"no window", func(s *Spec) { s.Window = 0 }, "window must be positive"},
		{"bad scope", func(s *Spec) { s.Scope.Per = "zone" }, `scope "zone"`},
		{"no tiers", func(s *Spec) { s.Tiers = nil }, "no alerting tiers"},
		{"zero factor", func(s *Spec) { s.Tiers[0].Factor = Ratio{} }, "tier 0: factor is missing"},
		{"tier past window", func(s *Spec) { s.Window = 10 * time.Minute }, "longer than the SLO window"},
		{"negative for", func(s *Spec) { s.Tiers[1].For = -time.Second }, "tier 1: for must not be negative"},
		{"runbook", func(s *Spec) { s.Runbook = "ftp://x" }, "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec999(ScopeNode, "seed")
			tt.change(&s)
			if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
