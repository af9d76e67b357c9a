package sli

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MergeBinary adds the sketch AppendBinary encoded in b to s. It is for stores that
// keep sketches in their encoded form (a few bytes per non-empty bucket instead of
// eight per bucket of the whole range): it checks only what keeps s consistent (the
// encoding's shape and index range), not every rule DecodeSummary enforces on input
// from the network, so b must come from AppendBinary.
func (s *Sketch) MergeBinary(b []byte) error {
	// Two passes, so that a bad encoding leaves s as it was.
	if err := s.mergeBinary(b, false); err != nil {
		return err
	}
	return s.mergeBinary(b, true)
}

func (s *Sketch) mergeBinary(b []byte, apply bool) error {
	next := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("merge encoded sketch: truncated or overlong varint")
		}
		b = b[n:]
		return v, nil
	}
	var head [4]uint64 // zero, sum, max, buckets
	for i := range head {
		v, err := next()
		if err != nil {
			return err
		}
		head[i] = v
	}
	zero, sum, mx, nb := head[0], head[1], head[2], head[3]
	if nb > uint64(MaxBuckets) {
		return fmt.Errorf("merge encoded sketch: %d buckets, more than the %d possible", nb, MaxBuckets)
	}
	n := zero
	prev := minIndex - 1
	for k := uint64(0); k < nb; k++ {
		gap, err := next()
		if err != nil {
			return err
		}
		c, err := next()
		if err != nil {
			return err
		}
		if gap == 0 || gap > uint64(maxIndex-prev) {
			return fmt.Errorf("merge encoded sketch: bucket %d index out of range", k)
		}
		prev += int(gap)
		if apply {
			s.addBucket(prev, c)
		}
		n += c
	}
	if len(b) != 0 {
		return errors.New("merge encoded sketch: trailing bytes")
	}
	if !apply {
		return nil
	}
	s.n += n
	s.zero += zero
	s.sum = satAdd(s.sum, sum)
	s.max = max(s.max, mx)
	return nil
}
