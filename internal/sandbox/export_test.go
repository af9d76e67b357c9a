package sandbox

// PooledMemories is how many discarded instances' memories f keeps for new ones.
func PooledMemories(f *Function) int { return f.memPool.pooled() }

// Queued is how many requests wait for one of f's concurrency slots.
func Queued(f *Function) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.slots.waiting
}
