package sandbox

// PooledMemories is how many discarded instances' memories f keeps for new ones.
func PooledMemories(f *Function) int { return f.memPool.pooled() }
