package sandbox

import (
	"strings"
	"testing"

	"fermion.dev/fermion/internal/telemetry"
)

// TestTimelineWarmupFailure: an instance whose warmup hook fails is on the timeline as
// discarded for "warmup" with the hook's answer, and one retired after
// max_requests_per_instance as "recycled".
func TestTimelineWarmupFailure(t *testing.T) {
	f, req := loadWarmupStatusGuest(t, 1)
	resp, err := req()
	if err != nil {
		t.Fatal(err)
	}
	served := resp.Instance
	f.warmups.mu.Lock()
	f.warmups.path = "/warmup?status=503"
	f.warmups.mu.Unlock()
	if _, err := req(); err == nil {
		t.Fatal("request after the hook started failing succeeded")
	}
	tls, _ := f.Timelines()
	var recycled, warmup bool
	for _, tl := range tls {
		switch {
		case tl.ID == served && tl.DiscardReason == telemetry.ReasonRecycled && tl.Requests == 1:
			recycled = true
		case tl.DiscardReason == telemetry.ReasonWarmup && strings.Contains(tl.DiscardDetail, "503") && tl.Requests == 0:
			warmup = true
		}
	}
	if !recycled || !warmup {
		t.Fatalf("recycled %v, warmup failure %v in %+v", recycled, warmup, tls)
	}
}
