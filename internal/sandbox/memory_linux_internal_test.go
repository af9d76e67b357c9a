package sandbox

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPrefaultMemory checks that a fresh memory has the bytes a new instance is about
// to write resident when wazero gets it, and no more than memoryPoolMaxDirty of them.
func TestPrefaultMemory(t *testing.T) {
	probe, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Madvise(probe, unix.MADV_POPULATE_WRITE)
	unix.Munmap(probe)
	if err != nil {
		t.Skipf("this kernel has no MADV_POPULATE_WRITE (%v): pages fault one by one", err)
	}
	const page = 4096
	tests := []struct {
		name     string
		prefault uint64
		resident uint64 // an offset that must be resident
		absent   uint64 // one that must not be (past any 2 MiB page the prefault took)
	}{
		{"none", 0, 0, 0},
		{"1 MiB", 1 << 20, 1<<20 - page, 4 << 20},
		{"over the cap", 64 << 20, memoryPoolMaxDirty - page, memoryPoolMaxDirty + 4<<20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *mappedMemory
			newMemoryAllocator(func(m *mappedMemory) { got = m }, nil, nil, tt.prefault).Allocate(0, 64<<20)
			if got == nil {
				t.Fatal("no mapped memory")
			}
			defer got.unmap()
			vec := make([]byte, len(got.buf)/page)
			if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&got.buf[0])), uintptr(len(got.buf)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
				t.Fatalf("mincore: %v", errno)
			}
			if tt.prefault > 0 && vec[tt.resident/page]&1 == 0 {
				t.Errorf("offset %d not resident after a prefault of %d bytes", tt.resident, tt.prefault)
			}
			if vec[tt.absent/page]&1 != 0 {
				t.Errorf("offset %d resident after a prefault of %d bytes", tt.absent, tt.prefault)
			}
			for i, b := range got.buf[:min(tt.prefault, memoryPoolMaxDirty)] {
				if b != 0 {
					t.Fatalf("byte %d of a fresh memory is %d", i, b)
				}
			}
		})
	}
}
