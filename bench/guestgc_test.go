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
// yieldEvery): without it a GC cycle started by one of the SDK's rare block allocations
// is never finished by its background worker, and for thousands of requests every pointer
// the SDK stores goes through the write barrier. Counted inside the guest over enough
// requests for several cycles, as fermion-bench guestcalls does: about 1.5 write barrier
// calls per request without the yield, 0.2 with it.
func TestGuestGCFinishes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guests and runs them under the interpreter")
	}
	const n = 12000
	var c barrierCounter
	got := guestCalls(t, fermiontest.Guest(t, "examples/hello", true), &c, &c.n, n)
	t.Logf("examples/hello: %.3f write barrier calls per request", got)
	if got > 0.6 {
		t.Fatalf("%.3f write barrier calls per request inside the guest, want at most 0.6: is a GC cycle left unfinished?", got)
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
