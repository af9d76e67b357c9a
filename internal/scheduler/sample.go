package scheduler

import "math"

// sampleNodes returns k of the nodes indexed by idx: those whose names hash lowest under
// seed (rendezvous hashing). Unlike shuffling, the sample does not depend on the order
// the nodes arrive in, which for a control plane reading a key-value store is arbitrary,
// and a node joining or leaving changes it by at most one node. idx is overwritten.
func sampleNodes(nodes []*Node, idx []int32, k int, seed uint64) []int32 {
	if k >= len(idx) {
		return idx
	}
	if k <= 0 {
		return nil
	}
	// Hashes are uniform, so the k lowest lie almost surely below the quantile
	// (k+margin)/len: keep only the keys under it and select among those few. The cut
	// only saves work; falling short of k (odds below 1e-6) means selecting among all.
	margin := 4*math.Sqrt(float64(k)) + 8
	cut := uint64(math.MaxUint64)
	if p := (float64(k) + margin) / float64(len(idx)); p < 1 {
		cut = uint64(p * (1 << 64))
	}
	low := make([]hashed, 0, k+int(2*margin))
	for _, i := range idx {
		if key := nameHash(seed, nodes[i].Name); key <= cut {
			low = append(low, hashed{key: key, idx: i})
		}
	}
	if len(low) < k {
		low = low[:0]
		for _, i := range idx {
			low = append(low, hashed{key: nameHash(seed, nodes[i].Name), idx: i})
		}
	}
	selectSmallest(low, k)
	out := idx[:k]
	for j := range out {
		out[j] = low[j].idx
	}
	return out
}

// hashed is a feasible node's index, with its sampling key once computed.
type hashed struct {
	key uint64
	idx int32
}

func (a hashed) less(b hashed) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	return a.idx < b.idx
}

// selectSmallest moves the k smallest keys to the front of a, in no particular order
// (quickselect; the keys are hashes, so the middle element is as good a pivot as any).
func selectSmallest(a []hashed, k int) {
	lo, hi := 0, len(a)-1
	for lo < hi {
		p := a[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for a[i].less(p) {
				i++
			}
			for p.less(a[j]) {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		// a[lo..j] ≤ p ≤ a[i..hi]; the k-th smallest is at index k-1.
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}

// nameHash hashes name under seed, eight bytes at a time, finished with splitmix64's
// mixer so that nearby seeds give unrelated orders. It must not change between
// releases: replicas and replays rely on the same sample.
func nameHash(seed uint64, name string) uint64 {
	const k = 0xbf58476d1ce4e5b9
	h := seed ^ uint64(len(name))*0x9e3779b97f4a7c15
	i := 0
	for ; i+8 <= len(name); i += 8 {
		s := name[i : i+8]
		w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		h = (h ^ w) * k
		h ^= h >> 31
	}
	var w uint64
	for shift := 0; i < len(name); i, shift = i+1, shift+8 {
		w |= uint64(name[i]) << shift
	}
	h = (h ^ w) * k
	h ^= h >> 30
	h *= k
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
