//go:build !linux

package sandbox

import (
	"time"

	"github.com/tetratelabs/wazero/experimental"
)

// mappedMemory is only used on Linux; elsewhere instances use wazero's own memory.
type mappedMemory struct{ restored bool }

func (*mappedMemory) release()       {}
func (*mappedMemory) discardMemory() {}

type memoryReset func(buf []byte, dirty uint64) (newDirty uint64, restored bool)

func newMemoryAllocator(func(*mappedMemory), *memoryPool, memoryReset, uint64) experimental.MemoryAllocator {
	return nil
}

// memoryPool keeps nothing where wazero allocates the memories.
type memoryPool struct{}

func (*memoryPool) trim(time.Time) {}
func (*memoryPool) close()         {}
func (*memoryPool) pooled() int    { return 0 }
