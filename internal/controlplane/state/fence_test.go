package state

import (
	"testing"
	"time"
)

func TestFenceActing(t *testing.T) {
	now := time.Now()
	fences := map[string]uint64{BucketNodes: 3}
	for _, tc := range []struct {
		name string
		l    *Fence
		want bool
	}{
		{"not leading", &Fence{heldUntil: now.Add(time.Second), fences: fences}, false},
		{"not fenced yet", &Fence{term: 7, heldUntil: now.Add(time.Second)}, false},
		{"lease provably held", &Fence{term: 7, heldUntil: now.Add(time.Second), fences: fences}, true},
		{"lease lapsed on the monotonic clock", &Fence{term: 7, heldUntil: now.Add(-time.Millisecond), fences: fences}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.Acting(now); got != tc.want {
				t.Fatalf("acting = %v, want %v", got, tc.want)
			}
		})
	}
}
