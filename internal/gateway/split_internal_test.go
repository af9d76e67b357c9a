package gateway

import (
	"fmt"
	"net/http"
	"testing"

	"fermion.dev/fermion/internal/sandbox"
)

// TestSplitCounterExact: without stickiness every 10,000 consecutive requests hold
// exactly the canary's weight, wherever the window starts, and its requests are spread
// evenly (no run of canary requests longer than a whole-request rounding allows).
func TestSplitCounterExact(t *testing.T) {
	for _, w := range []int{0, 1, 100, 500, 3333, 5000, 9999, MaxWeight} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			s := &splitState{weight: uint64(w)}
			for range 1234 { // start mid-cycle
				s.pickCounter()
			}
			got, gap, maxGap := 0, 0, 0
			for range MaxWeight {
				if s.pickCounter() {
					got++
					maxGap = max(maxGap, gap)
					gap = 0
				} else {
					gap++
				}
			}
			if got != w {
				t.Fatalf("%d canary requests in 10,000, want %d", got, w)
			}
			if w >= 100 {
				// Evenly spaced: at most one request more than the ideal spacing.
				if ideal := MaxWeight / w; maxGap > ideal {
					t.Fatalf("longest run without the canary %d requests, want at most %d", maxGap, ideal)
				}
			}
		})
	}
}

// TestSplitSticky: a sticky value always lands on the same side, the share of distinct
// values is the weight (within 2 points), raising the weight keeps every client already
// on the canary there, and a request without the value falls back to the counter.
func TestSplitSticky(t *testing.T) {
	for _, w := range []int{100, 500, 5000} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			s, err := newSplitState(&Split{Target: nil, Weight: w, Sticky: "header:x-user"})
			if err == nil || s != nil {
				t.Fatal("a split without a target was accepted")
			}
			s = &splitState{weight: uint64(w), header: "X-User"}
			higher := &splitState{weight: uint64(min(2*w, MaxWeight)), header: "X-User"}
			canary := 0
			for i := range 10000 {
				r := &http.Request{Header: http.Header{"X-User": {fmt.Sprintf("user-%d", i)}}}
				c, cookie := s.pick(r)
				if cookie != "" {
					t.Fatal("header stickiness set a cookie")
				}
				if c2, _ := s.pick(r); c2 != c {
					t.Fatalf("user-%d changed sides", i)
				}
				if c {
					canary++
					if up, _ := higher.pick(r); !up {
						t.Fatalf("user-%d left the canary when its weight rose", i)
					}
				}
			}
			if diff := float64(canary)/100 - float64(w)/100; diff < -2 || diff > 2 {
				t.Fatalf("%.2f %% of users on the canary, want %.2f %% ± 2", float64(canary)/100, float64(w)/100)
			}
			// No header: the counter decides, exactly.
			got := 0
			for range MaxWeight {
				if c, _ := s.pick(&http.Request{Header: http.Header{}}); c {
					got++
				}
			}
			if got != w {
				t.Fatalf("%d canary requests without the header, want %d", got, w)
			}
		})
	}
}

func TestNewSplitStateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Split
	}{
		{"negative weight", Split{Target: (*sandbox.Function)(nil), Weight: -1}},
		{"weight over full", Split{Target: (*sandbox.Function)(nil), Weight: MaxWeight + 1}},
		{"sticky kind", Split{Target: (*sandbox.Function)(nil), Weight: 1, Sticky: "query:u"}},
		{"sticky no name", Split{Target: (*sandbox.Function)(nil), Weight: 1, Sticky: "cookie:"}},
		{"sticky no colon", Split{Target: (*sandbox.Function)(nil), Weight: 1, Sticky: "cookie"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newSplitState(&tc.s); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
