package sli

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// RelativeAccuracy bounds a quantile's error: for any q, Quantile(q) is within this
// fraction of the exact q-quantile (lower rank, sorted[floor(q·(n-1))]) of the recorded
// values, as long as that value lies in [MinTrackable, MaxTrackable].
const RelativeAccuracy = 0.01

const (
	// MinTrackable is the smallest latency with its own bucket; anything shorter
	// (including zero and negative durations) is counted in the zero bucket and
	// reported as 0.
	MinTrackable = time.Microsecond
	// MaxTrackable is the largest latency the buckets cover; longer ones are counted
	// in the top bucket, reported as about MaxTrackable.
	MaxTrackable = 24 * time.Hour
)

var (
	gamma       = (1 + RelativeAccuracy) / (1 - RelativeAccuracy)
	logGamma    = math.Log(gamma)
	invLogGamma = 1 / logGamma
	// minIndex and maxIndex are the bucket indexes of MinTrackable and MaxTrackable.
	minIndex = int(math.Ceil(math.Log(float64(MinTrackable)) * invLogGamma))
	maxIndex = int(math.Ceil(math.Log(float64(MaxTrackable)) * invLogGamma))
)

// MaxBuckets is how many non-empty buckets a sketch can have, the zero bucket aside;
// decoders refuse more.
var MaxBuckets = maxIndex - minIndex + 1

// Sketch is a mergeable latency sketch in the manner of DDSketch: bucket i counts values
// v with γ^(i-1) < v ≤ γ^i, γ = (1+α)/(1-α), α = RelativeAccuracy, so reporting a
// bucket's midpoint 2γ^i/(γ+1) errs by at most α. Buckets are fixed, so two sketches
// merge by adding counts and merge(a, b) equals the sketch of a ∪ b exactly.
//
// Counts are kept dense between the lowest and highest bucket seen, growing only when a
// new extreme arrives, so recording into a sketch that has seen its range does not
// allocate. The zero value is an empty sketch. A Sketch is not safe for concurrent use.
type Sketch struct {
	offset int      // bucket index of counts[0]
	counts []uint64 // counts[i] is bucket offset+i
	zero   uint64   // values below MinTrackable
	n      uint64
	sum    uint64 // nanoseconds, saturating
	max    uint64 // nanoseconds
}

func bucketOf(ns int64) int {
	i := int(math.Ceil(math.Log(float64(ns)) * invLogGamma))
	// Guard float rounding at the ends: the index must stay in range.
	return min(max(i, minIndex), maxIndex)
}

// Add records one latency.
func (s *Sketch) Add(d time.Duration) { s.AddN(d, 1) }

// AddN records n latencies of d.
func (s *Sketch) AddN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	s.n += n
	if d < MinTrackable {
		s.zero += n
		return
	}
	ns := uint64(d)
	s.sum = satAdd(s.sum, satMul(ns, n))
	s.max = max(s.max, ns)
	s.addBucket(bucketOf(int64(d)), n)
}

func (s *Sketch) addBucket(i int, n uint64) {
	if len(s.counts) == 0 {
		if cap(s.counts) == 0 {
			s.counts = make([]uint64, 1, 64)
		} else {
			s.counts = s.counts[:1]
		}
		s.offset = i
	}
	switch {
	case i < s.offset:
		grow := s.offset - i
		c := s.counts
		if len(c)+grow <= cap(c) {
			c = c[:len(c)+grow]
			copy(c[grow:], c)
			clear(c[:grow])
		} else {
			c = make([]uint64, len(s.counts)+grow, 2*(len(s.counts)+grow))
			copy(c[grow:], s.counts)
		}
		s.counts = c
		s.offset = i
	case i >= s.offset+len(s.counts):
		need := i - s.offset + 1
		if need <= cap(s.counts) {
			old := len(s.counts)
			s.counts = s.counts[:need]
			clear(s.counts[old:])
		} else {
			c := make([]uint64, need, 2*need)
			copy(c, s.counts)
			s.counts = c
		}
	}
	s.counts[i-s.offset] += n
}

// Count is the number of values recorded.
func (s *Sketch) Count() uint64 { return s.n }

// Sum is the total of the values recorded at or above MinTrackable, saturating at the
// largest duration; Sum/Count is the mean to within the values below MinTrackable.
func (s *Sketch) Sum() time.Duration { return time.Duration(min(s.sum, math.MaxInt64)) }

// Max is the largest value recorded, exactly (0 if none reached MinTrackable).
func (s *Sketch) Max() time.Duration { return time.Duration(min(s.max, math.MaxInt64)) }

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of the recorded values to within
// RelativeAccuracy, and 0 for an empty sketch. The rank is floor(q·(n-1)), the lower
// of the two ranks around q, so Quantile(1) is the maximum's bucket.
func (s *Sketch) Quantile(q float64) time.Duration {
	if s.n == 0 || math.IsNaN(q) {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(q * float64(s.n-1))
	if rank < s.zero {
		return 0
	}
	seen := s.zero
	for i, c := range s.counts {
		seen += c
		if seen > rank {
			v := 2 * math.Pow(gamma, float64(s.offset+i)) / (gamma + 1)
			// The exact maximum is known; never report above it.
			return min(time.Duration(v), s.Max())
		}
	}
	return s.Max()
}

// CountAtMost returns how many recorded values were at most d: the good events of a
// latency SLI ("requests answered within 250 ms"). Values in d's own bucket count as
// at most d, so a value up to a factor γ (about 1.02) above d may be counted too; a
// threshold's bucket is the same on every node, so merged sketches agree exactly.
func (s *Sketch) CountAtMost(d time.Duration) uint64 {
	if d < MinTrackable {
		if d < 0 {
			return 0
		}
		return s.zero
	}
	top := bucketOf(int64(d)) - s.offset
	n := s.zero
	for i, c := range s.counts {
		if i > top {
			break
		}
		n += c
	}
	return n
}

// Merge adds o's values to s.
func (s *Sketch) Merge(o *Sketch) {
	if o == nil || o.n == 0 {
		return
	}
	s.n += o.n
	s.zero += o.zero
	s.sum = satAdd(s.sum, o.sum)
	s.max = max(s.max, o.max)
	for i, c := range o.counts {
		if c != 0 {
			s.addBucket(o.offset+i, c)
		}
	}
}

// Reset empties s, keeping its memory for reuse.
func (s *Sketch) Reset() {
	clear(s.counts)
	s.counts = s.counts[:0]
	s.offset, s.zero, s.n, s.sum, s.max = 0, 0, 0, 0, 0
}

// Clone returns an independent copy of s, its counts trimmed to the non-empty range.
func (s *Sketch) Clone() *Sketch {
	c := &Sketch{zero: s.zero, n: s.n, sum: s.sum, max: s.max}
	lo, hi := 0, len(s.counts)
	for lo < hi && s.counts[lo] == 0 {
		lo++
	}
	for hi > lo && s.counts[hi-1] == 0 {
		hi--
	}
	if lo < hi {
		c.counts = append([]uint64(nil), s.counts[lo:hi]...)
		c.offset = s.offset + lo
	}
	return c
}

// Equal reports whether s and o hold the same buckets, counts, sum and maximum.
func (s *Sketch) Equal(o *Sketch) bool {
	if s.n != o.n || s.zero != o.zero || s.sum != o.sum || s.max != o.max {
		return false
	}
	a, b := s.Clone(), o.Clone()
	if a.offset != b.offset || len(a.counts) != len(b.counts) {
		return false
	}
	for i := range a.counts {
		if a.counts[i] != b.counts[i] {
			return false
		}
	}
	return true
}

// AppendBinary appends s's encoding to b: uvarints zero count, sum, max, the number of
// non-empty buckets, then for each the gap from the previous bucket's index (the first
// relative to the lowest possible index) and its count. Empty buckets cost nothing.
func (s *Sketch) AppendBinary(b []byte) []byte {
	b = binary.AppendUvarint(b, s.zero)
	b = binary.AppendUvarint(b, s.sum)
	b = binary.AppendUvarint(b, s.max)
	nb := 0
	for _, c := range s.counts {
		if c != 0 {
			nb++
		}
	}
	b = binary.AppendUvarint(b, uint64(nb))
	prev := minIndex - 1
	for i, c := range s.counts {
		if c == 0 {
			continue
		}
		idx := s.offset + i
		b = binary.AppendUvarint(b, uint64(idx-prev))
		b = binary.AppendUvarint(b, c)
		prev = idx
	}
	return b
}

// errTruncated is returned for input that ends inside a field.
var errTruncated = errors.New("input ends inside a field (truncated?)")

// reader decodes uvarints and length-prefixed strings, remembering the first error.
type reader struct {
	b   []byte
	off int
}

func (r *reader) uvarint(field string) (uint64, error) { return r.uvarintOf(field, "") }

// uvarintOf names its field field+suffix, joined only on error so that decoding a
// valid summary builds no strings.
func (r *reader) uvarintOf(field, suffix string) (uint64, error) {
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		return 0, fmt.Errorf("%s%s at byte %d: %w", field, suffix, r.off, errTruncated)
	case n < 0:
		return 0, fmt.Errorf("%s%s at byte %d: varint overflows 64 bits", field, suffix, r.off)
	case n > 1 && r.b[r.off+n-1] == 0:
		// One value, one encoding: equal summaries have equal bytes.
		return 0, fmt.Errorf("%s%s at byte %d: varint is not minimally encoded", field, suffix, r.off)
	}
	r.off += n
	return v, nil
}

// decodeSketch reads a sketch written by AppendBinary.
func (r *reader) decodeSketch() (*Sketch, error) {
	s := &Sketch{}
	var err error
	if s.zero, err = r.uvarint("latency zero count"); err != nil {
		return nil, err
	}
	if s.sum, err = r.uvarint("latency sum"); err != nil {
		return nil, err
	}
	if s.max, err = r.uvarint("latency max"); err != nil {
		return nil, err
	}
	nb, err := r.uvarint("latency bucket count")
	if err != nil {
		return nil, err
	}
	if nb > uint64(MaxBuckets) {
		return nil, fmt.Errorf("latency sketch has %d buckets, more than the %d possible; the sender is not a Fermion sketch of this version", nb, MaxBuckets)
	}
	if nb > uint64(len(r.b)-r.off)/2 {
		return nil, fmt.Errorf("latency sketch claims %d buckets in %d bytes: %w", nb, len(r.b)-r.off, errTruncated)
	}
	s.n = s.zero
	prev := minIndex - 1
	idxs := make([]int, 0, nb)
	cnts := make([]uint64, 0, nb)
	for k := uint64(0); k < nb; k++ {
		gap, err := r.uvarint("latency bucket index")
		if err != nil {
			return nil, err
		}
		if gap == 0 || gap > uint64(maxIndex-prev) {
			return nil, fmt.Errorf("latency bucket %d: index %d+%d outside the sketch's range [%d, %d] or not increasing", k, prev, gap, minIndex, maxIndex)
		}
		c, err := r.uvarint("latency bucket count")
		if err != nil {
			return nil, err
		}
		if c == 0 {
			return nil, fmt.Errorf("latency bucket %d has a count of 0; empty buckets are never encoded", k)
		}
		if s.n+c < s.n {
			return nil, fmt.Errorf("latency bucket %d: total count overflows 64 bits", k)
		}
		s.n += c
		prev += int(gap)
		idxs = append(idxs, prev)
		cnts = append(cnts, c)
	}
	if len(idxs) > 0 {
		s.offset = idxs[0]
		s.counts = make([]uint64, idxs[len(idxs)-1]-idxs[0]+1)
		for k, i := range idxs {
			s.counts[i-s.offset] = cnts[k]
		}
		if s.max < uint64(MinTrackable) || s.sum < s.max {
			return nil, fmt.Errorf("latency max %dns and sum %dns are inconsistent with non-empty buckets (max at least %v, sum at least max)", s.max, s.sum, MinTrackable)
		}
		// The exact maximum must lie in the highest bucket.
		if top := idxs[len(idxs)-1]; bucketOf(int64(min(s.max, math.MaxInt64))) != top {
			return nil, fmt.Errorf("latency max %v does not fall in the highest bucket (%d)", time.Duration(min(s.max, math.MaxInt64)), top)
		}
	} else if s.max != 0 || s.sum != 0 {
		return nil, errors.New("latency sketch has a sum or max but no buckets")
	}
	return s, nil
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return math.MaxUint64
	}
	return a + b
}

func satMul(a, b uint64) uint64 {
	if a != 0 && b > math.MaxUint64/a {
		return math.MaxUint64
	}
	return a * b
}
