package rollout_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/rollout"
)

func TestWireRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   v1.RolloutStrategy
	}{
		{"canary", v1.RolloutStrategy{Kind: "canary", Steps: []string{"1node", "10%", "manual", "50%", "pause", "100%"}, Interval: "30s", Sticky: "cookie:session"}},
		{"canary with checks", v1.RolloutStrategy{Kind: "canary", Steps: []string{"1node@region=eu", "5%"}, MaxExtensions: -1,
			Analysis: &v1.RolloutAnalysis{MaxErrorRatio: 2, MaxP99Ratio: 1.5, MinRequests: 20, Alpha: 0.01}}},
		{"rolling", v1.RolloutStrategy{Kind: "rolling", MaxUnavailable: "25%", MaxSurge: "1"}},
		{"all at once", v1.RolloutStrategy{Kind: "all-at-once"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := rollout.FromAPI(&tc.in)
			if err != nil {
				t.Fatal(err)
			}
			back, err := rollout.FromAPI(new(rollout.ToAPI(s)))
			if err != nil {
				t.Fatalf("read back %+v: %v", rollout.ToAPI(s), err)
			}
			if !reflect.DeepEqual(s, back) {
				t.Fatalf("round trip changed the spec:\n%+v\n%+v", s, back)
			}
		})
	}
	s, err := rollout.FromAPI(&v1.RolloutStrategy{Kind: "canary", Steps: []string{"10%"}, Analysis: &v1.RolloutAnalysis{MaxErrorRatio: 1}})
	if err != nil || s.Checks.MaxErrorRatio != 0.01 || s.Interval != time.Minute {
		t.Fatalf("percent and defaults: %+v %v", s, err)
	}
}

func TestWireErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    v1.RolloutStrategy
		field string
		want  string
	}{
		{"kind", v1.RolloutStrategy{Kind: "canery"}, "kind", "unknown strategy"},
		{"step", v1.RolloutStrategy{Kind: "canary", Steps: []string{"1nod"}}, "steps", "is not a step"},
		{"comma", v1.RolloutStrategy{Kind: "canary", Steps: []string{"1node,10%"}}, "steps[0]", "comma"},
		{"interval", v1.RolloutStrategy{Kind: "canary", Steps: []string{"10%"}, Interval: "5"}, "interval", "duration"},
		{"sticky", v1.RolloutStrategy{Kind: "canary", Steps: []string{"10%"}, Sticky: "session"}, "sticky", "stickiness"},
		{"percent", v1.RolloutStrategy{Kind: "canary", Steps: []string{"10%"}, Analysis: &v1.RolloutAnalysis{MaxErrorRatio: 150}}, "analysis.maxErrorRatio", "percentage"},
		{"no steps", v1.RolloutStrategy{Kind: "canary"}, "", "a canary needs steps"},
		{"amount", v1.RolloutStrategy{Kind: "rolling", MaxSurge: "lots"}, "maxSurge", "node count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rollout.FromAPI(&tc.in)
			var fe *rollout.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Message, tc.want) {
				t.Fatalf("got %v (%#v), want field %q with %q", err, fe, tc.field, tc.want)
			}
		})
	}
}

// FuzzFromAPI: a strategy from a PUT body never panics, and one that converts reads
// back the same through its wire form.
func FuzzFromAPI(f *testing.F) {
	f.Add("canary", "1node,10%,manual,100%", "1m", "", "", "cookie:s", 0, 1.0, uint64(100))
	f.Add("rolling", "", "", "25%", "1", "", -1, 0.0, uint64(0))
	f.Add("canary", "1node@region=eu,5%", "30s", "", "", "", 3, 0.5, uint64(20))
	f.Fuzz(func(t *testing.T, kind, steps, interval, maxUnavailable, maxSurge, sticky string, ext int, errRatio float64, minReq uint64) {
		w := &v1.RolloutStrategy{Kind: kind, Interval: interval, MaxExtensions: ext, MaxUnavailable: maxUnavailable, MaxSurge: maxSurge, Sticky: sticky,
			Analysis: &v1.RolloutAnalysis{MaxErrorRatio: errRatio, MinRequests: minReq}}
		if steps != "" {
			w.Steps = strings.Split(steps, ",")
		}
		s, err := rollout.FromAPI(w)
		if err != nil {
			return
		}
		back, err := rollout.FromAPI(new(rollout.ToAPI(s)))
		if err != nil {
			t.Fatalf("%+v converted to %+v, which does not read back: %v", w, rollout.ToAPI(s), err)
		}
		if !reflect.DeepEqual(s, back) {
			t.Fatalf("round trip changed %+v:\n%+v\n%+v", w, s, back)
		}
	})
}
