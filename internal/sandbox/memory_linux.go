package sandbox

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// Why an allocator of our own? wazero's default linear memory is a Go slice that
// memory.grow reallocates and copies; a Go guest's runtime grows its memory a little at
// a time while it starts, so a new instance spent more time copying its memory than
// running _initialize. This allocator reserves the memory limit as one anonymous
// mapping and grows within it: growing never copies, pages the guest never touches
// take no RAM, and a discarded instance's memory goes back to the kernel at once
// instead of waiting for the Go heap to give it back.

// Memory states. An instance's owner holds its memory while it uses it (a request, or
// the instance's creation); the mapping is only removed when nobody holds it, so a
// module closed from elsewhere mid-call (Function.Close after its drain timed out, or
// wazero's close-on-cancel) cannot pull memory from under running guest code.
const (
	memIdle         int32 = iota // mapped, not held
	memHeld                      // mapped, held by the instance's owner
	memFreeWhenIdle              // wazero freed it while held: unmap on release
	memFreed                     // unmapped
)

type mappedMemory struct {
	buf   []byte // the whole reservation
	state atomic.Int32
}

// newMemoryAllocator returns an allocator whose one memory, once wazero has made it,
// is reported to got. The memory starts held by the instance being created.
func newMemoryAllocator(got func(*mappedMemory)) experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
		b, err := unix.Mmap(-1, 0, int(max), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			// No address space for the reservation: a Go slice, as wazero would use.
			return &sliceMemory{max: max}
		}
		unix.Madvise(b, unix.MADV_HUGEPAGE)
		m := &mappedMemory{buf: b}
		m.state.Store(memHeld)
		got(m)
		return m
	})
}

// Reallocate implements experimental.LinearMemory: growing stays in the reservation.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size:size]
}

// Free implements experimental.LinearMemory.
func (m *mappedMemory) Free() {
	for {
		switch m.state.Load() {
		case memIdle:
			if m.state.CompareAndSwap(memIdle, memFreed) {
				m.unmap()
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

// hold marks the memory in use by the instance's owner.
func (m *mappedMemory) hold() { m.state.CompareAndSwap(memIdle, memHeld) }

// release ends the owner's use, unmapping the memory if wazero freed it meanwhile.
func (m *mappedMemory) release() {
	if m.state.CompareAndSwap(memHeld, memIdle) {
		return
	}
	if m.state.CompareAndSwap(memFreeWhenIdle, memFreed) {
		m.unmap()
	}
}

func (m *mappedMemory) unmap() {
	unix.Munmap(m.buf)
	m.buf = nil
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
