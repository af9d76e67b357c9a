package sli

import (
	"iter"
	"math"
	"time"
)

// Buckets yields s's non-empty buckets in increasing order as (index, count): the zero
// bucket (values below MinTrackable) first with index math.MinInt, then bucket i, which
// holds values in (γ^(i-1), γ^i] ns. Indexes are the same in every sketch, so two
// sketches' buckets line up without conversion: rank tests such as Mann–Whitney U run
// on them directly (internal/rollout).
func (s *Sketch) Buckets() iter.Seq2[int, uint64] {
	return func(yield func(int, uint64) bool) {
		if s.zero > 0 && !yield(math.MinInt, s.zero) {
			return
		}
		for i, c := range s.counts {
			if c != 0 && !yield(s.offset+i, c) {
				return
			}
		}
	}
}

// BucketUpper returns the largest value bucket index i holds (γ^i ns), and 0 for the
// zero bucket.
func BucketUpper(i int) time.Duration {
	if i == math.MinInt {
		return 0
	}
	return time.Duration(math.Pow(gamma, float64(i)))
}
