package sandbox

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"fermion.dev/fermion/internal/telemetry"
)

// Why hold limits.memory, not the memory an instance has grown to? A guest grows its
// memory inside a call without asking the host, up to its limit; the host cannot refuse
// a memory.grow for lack of node memory without trapping a request that was within its
// own limit. So each live instance holds its whole limit from its creation to its
// discard: the node's instances can never together grow past what it offers. It is
// also what the scheduler reserves (limits.memory × instances per node), so a node and
// the control plane count alike, and what the allocator reserves in address space
// (memory_linux.go); resident memory stays what guests touch.

// nodeMemory is the memory a node offers to functions and what live instances hold of
// it. Lock-free: a hold is one compare-and-swap when an instance is created, a release
// one add when it is discarded; requests on warm instances never touch it.
type nodeMemory struct {
	offered int64 // 0: no limit, holds are only counted
	held    atomic.Int64
}

// hold takes n bytes for a new instance, or says why they do not fit.
func (m *nodeMemory) hold(n int64) error {
	for {
		cur := m.held.Load()
		if m.offered > 0 && cur+n > m.offered {
			return &nodeMemoryError{need: n, held: cur, offered: m.offered}
		}
		if m.held.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

// release gives back what hold took.
func (m *nodeMemory) release(n int64) { m.held.Add(-n) }

// nodeMemoryError is a new instance refused because the node's live instances already
// hold the memory it offers.
type nodeMemoryError struct {
	need, held, offered int64
}

func (e *nodeMemoryError) Error() string {
	return fmt.Sprintf("node memory: live instances hold %d MiB of the %d MiB this node offers to functions; another instance needs its limits.memory of %d MiB (idle instances free theirs after scaling.idle_timeout; raise the node's --memory or lower limits.memory)",
		e.held>>20, e.offered>>20, e.need>>20)
}

// nodeMemoryRefused is the request's error for a nodeMemoryError; it counts the
// rejection.
func (f *Function) nodeMemoryRefused(err error) *Error {
	f.metrics.LimitRejection(telemetry.LimitNodeMemory)
	return &Error{Status: http.StatusServiceUnavailable, Reason: telemetry.LimitNodeMemory, RetryAfter: 1,
		Msg: fmt.Sprintf("no memory left on this node for another instance of %s; retry later", f.id), Err: err}
}

// NodeMemory reports the memory the node offers to functions (0: no limit) and what the
// live instances of every function hold of it: each holds its limits.memory.
func (e *Engine) NodeMemory() (offered, held int64) {
	return e.memory.offered, e.memory.held.Load()
}
