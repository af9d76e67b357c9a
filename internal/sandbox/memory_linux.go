package sandbox

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// Why an allocator of our own? wazero's default linear memory is a Go slice that
// memory.grow reallocates and copies; a Go guest's runtime grows its memory a little at
// a time while it starts, so a new instance spent more time copying its memory than
// running _initialize. This allocator reserves the memory limit as one anonymous
// mapping and grows within it: growing never copies, pages the guest never touches
// take no RAM, and a discarded instance's memory goes back to the kernel (or to the
// function's memory pool, below) at once instead of waiting for the Go heap to give it
// back.

// Memory states. An instance holds its memory from its creation until its owner
// closes it (instance.release, in instance.close); the mapping is only removed when
// nobody holds it, so a module closed from elsewhere mid-call (Function.Close after
// its drain timed out, or wazero's close-on-cancel) cannot pull memory from under
// running guest code: it is retired when the instance is closed.
const (
	memIdle         int32 = iota // mapped, not held
	memHeld                      // mapped, held by its live instance
	memFreeWhenIdle              // wazero freed it while held: retire on release
	memFreed                     // unmapped, or in a memory pool
)

type mappedMemory struct {
	buf   []byte // the whole reservation
	state atomic.Int32
	// pool takes the memory back when it is freed, unless keep was cleared; nil for
	// memories that are always unmapped.
	pool *memoryPool
	keep atomic.Bool
	// dirty is how many leading bytes may be non-zero: the largest size the memory has
	// had since it was last reset. Past it the reservation is all zero. Written by
	// Reallocate (the guest's goroutine) and read when the memory is reused, after its
	// owner let go of it.
	dirty uint64
	// restored says the memory was reused and reset to a snapshot's contents by the
	// allocator: the snapshot's restore has nothing left to copy.
	restored bool
	freedAt  time.Time // when it entered the pool
}

// memoryReset brings a reused memory, whose first dirty bytes may hold anything, to a
// new instance's starting contents. It returns the new dirty length and whether the
// contents are a snapshot's (restored). nil clears the dirty bytes.
type memoryReset func(buf []byte, dirty uint64) (newDirty uint64, restored bool)

// newMemoryAllocator returns an allocator whose one memory, once wazero has made it,
// is reported to got. The memory starts held by the instance being created. With a
// pool, it reuses a memory from it when there is one (reset by reset) and gives its
// memory back to it when freed. A fresh memory has its first prefault bytes (what the
// new instance is about to write: the snapshot's size, or the initial memory) faulted
// in at once (see prefaultMemory).
func newMemoryAllocator(got func(*mappedMemory), pool *memoryPool, reset memoryReset, prefault uint64) experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
		if m := pool.get(max); m != nil {
			if reset != nil {
				m.dirty, m.restored = reset(m.buf, m.dirty)
			} else {
				clear(m.buf[:m.dirty])
				m.dirty, m.restored = 0, false
			}
			m.keep.Store(true)
			m.state.Store(memHeld)
			got(m)
			return m
		}
		b, err := unix.Mmap(-1, 0, int(max), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			// No address space for the reservation: a Go slice, as wazero would use.
			return &sliceMemory{max: max}
		}
		unix.Madvise(b, unix.MADV_HUGEPAGE)
		prefaultMemory(b, prefault)
		m := &mappedMemory{buf: b, pool: pool}
		m.keep.Store(true)
		m.state.Store(memHeld)
		got(m)
		return m
	})
}

// Why fault a fresh memory in with one call? A new instance with no discarded memory
// to reuse (a burst, a prewarm) writes its data segments and snapshot pages into a
// fresh mapping, and each first touch of a page is a fault: on the project's VM the
// 2 MiB pages cost 0.3 ms at p50 for examples/hello's 3.2 MB but tens of ms at p99,
// when a fault finds no free huge page and compacts. MADV_POPULATE_WRITE (Linux 5.14)
// faults the range in one call: the same p50, and a mean and p99 lower in most runs of
// BenchmarkFreshMemory (bench/RESULTS.md). Only the bytes the instance writes at once
// are populated, capped at memoryPoolMaxDirty, so the node's RSS still follows what
// instances use; a kernel without it, or short of memory, leaves the pages to fault
// one by one as before.
func prefaultMemory(b []byte, n uint64) {
	n = min(n, uint64(len(b)), memoryPoolMaxDirty)
	if n > 0 {
		unix.Madvise(b[:n], unix.MADV_POPULATE_WRITE)
	}
}

// Reallocate implements experimental.LinearMemory: growing stays in the reservation.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	m.dirty = max(m.dirty, size)
	return m.buf[:size:size]
}

// Free implements experimental.LinearMemory.
func (m *mappedMemory) Free() {
	for {
		switch m.state.Load() {
		case memIdle:
			if m.state.CompareAndSwap(memIdle, memFreed) {
				m.retire()
				return
			}
		case memHeld:
			if m.state.CompareAndSwap(memHeld, memFreeWhenIdle) {
				return
			}
		default:
			return
		}
	}
}

// release ends the owner's use, retiring the memory if wazero freed it meanwhile.
func (m *mappedMemory) release() {
	if m.state.CompareAndSwap(memHeld, memIdle) {
		return
	}
	if m.state.CompareAndSwap(memFreeWhenIdle, memFreed) {
		m.retire()
	}
}

// discardMemory says the memory must not be reused: its instance is being closed
// because the pool shrinks or the function closes.
func (m *mappedMemory) discardMemory() { m.keep.Store(false) }

// retire gives a freed memory to its pool, or unmaps it.
func (m *mappedMemory) retire() {
	if m.keep.Load() && m.pool.put(m) {
		return
	}
	m.unmap()
}

func (m *mappedMemory) unmap() {
	unix.Munmap(m.buf)
	m.buf = nil
}

// Why reuse a discarded instance's memory? A new instance's memory used to be a fresh
// mapping, and a discarded one's was unmapped: every instance faulted its pages in
// (2 MiB huge pages the kernel zeroes, or 4 KiB ones: on the project's VM a first touch
// cost tens of microseconds a page) and gave them back. A memory pool keeps the
// reservations of a few discarded instances with their pages resident. A new instance
// takes one and resets it in one pass over the bytes the last instance could have
// written (dirty): zeroed, or written with the snapshot's pages and zeroed around them.
// Nothing of the previous instance survives: it could only write below dirty. The pool
// is small (memoryPoolSize per function), takes only memories that stayed small
// (memoryPoolMaxDirty), gives its memories back after the function's idle timeout
// (trim, from the reaper), and never takes those of instances closed because the pool
// of instances shrinks or the function closes.
const (
	memoryPoolSize     = 4
	memoryPoolMaxDirty = 16 << 20
)

// memoryPool keeps freed linear memories of one function for its next instances.
type memoryPool struct {
	mu     sync.Mutex
	free   []*mappedMemory // the most recently freed last
	closed bool
}

// get takes a pooled memory of reservation size max, or returns nil.
func (p *memoryPool) get(max uint64) *mappedMemory {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if m := p.free[i]; uint64(len(m.buf)) == max {
			p.free = append(p.free[:i], p.free[i+1:]...)
			return m
		}
	}
	return nil
}

// put keeps m for reuse, reporting false when the caller must unmap it instead.
func (p *memoryPool) put(m *mappedMemory) bool {
	if p == nil || m.dirty > memoryPoolMaxDirty {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.free) >= memoryPoolSize {
		return false
	}
	m.freedAt = time.Now()
	p.free = append(p.free, m)
	return true
}

// trim unmaps the memories pooled before cutoff.
func (p *memoryPool) trim(cutoff time.Time) {
	p.mu.Lock()
	var old []*mappedMemory
	n := 0
	for n < len(p.free) && p.free[n].freedAt.Before(cutoff) {
		n++
	}
	old = append(old, p.free[:n]...)
	p.free = append(p.free[:0], p.free[n:]...)
	p.mu.Unlock()
	for _, m := range old {
		m.unmap()
	}
}

// close unmaps every pooled memory; memories freed later are unmapped.
func (p *memoryPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, m := range free {
		m.unmap()
	}
}

// pooled returns how many memories the pool holds.
func (p *memoryPool) pooled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// sliceMemory is a linear memory on the Go heap that copies when it grows.
type sliceMemory struct {
	b   []byte
	max uint64
}

func (s *sliceMemory) Reallocate(size uint64) []byte {
	if size > s.max {
		return nil
	}
	if size > uint64(len(s.b)) {
		s.b = append(s.b, make([]byte, size-uint64(len(s.b)))...)
	}
	return s.b[:size]
}

func (s *sliceMemory) Free() {}
