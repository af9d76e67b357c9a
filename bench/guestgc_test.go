package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"fermion.dev/fermion/internal/fermiontest"
)

// TestGuestGCFinishes holds the Go SDK's yield to the scheduler (sdk/internal/guest,
// yieldEvery): without it a GC cycle started by an allocation is never finished by its
// background worker, and for thousands of requests every pointer the guest stores goes
// through the write barrier. Counted inside the guest over enough requests for several
// cycles, as fermion-bench guestcalls does. hello allocates a block per dozens of
// requests, so it starts few cycles in a run (0.06 calls per request with the yield,
// about 1.5 without); the net/http hello allocates three times a request and starts
// many, so it also shows a yield made too rare: 0.28 calls per request with a yield
// every 32 requests, 0.54 every 64, 1.2 every 128 (bench/RESULTS.md, sdkgo3).
func TestGuestGCFinishes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guests and runs them under the interpreter")
	}
	for _, guest := range []string{"examples/hello", "examples/testdata/hello-nethttp"} {
		t.Run(guest, func(t *testing.T) {
			const n = 12000
			var c barrierCounter
			got := guestCalls(t, fermiontest.Guest(t, guest, true), &c, &c.n, n)
			t.Logf("%s: %.3f write barrier calls per request", guest, got)
			if got > 0.6 {
				t.Fatalf("%.3f write barrier calls per request inside the guest, want at most 0.6: is a GC cycle left unfinished?", got)
			}
		})
	}
}

// barrierCounter counts calls of the Go runtime's write barrier entry points.
type barrierCounter struct{ n int }

func (c *barrierCounter) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	if !strings.HasPrefix(strings.TrimPrefix(def.DebugName(), "."), "gcWriteBarrier") {
		return nil
	}
	return experimental.FunctionListenerFunc(func(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
		c.n++
	})
}
