//go:build !linux

package sandbox

import "github.com/tetratelabs/wazero/experimental"

// mappedMemory is only used on Linux; elsewhere instances use wazero's own memory.
type mappedMemory struct{}

func (*mappedMemory) hold()    {}
func (*mappedMemory) release() {}

func newMemoryAllocator(func(*mappedMemory)) experimental.MemoryAllocator { return nil }
