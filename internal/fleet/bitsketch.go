package fleet

import (
	"encoding/binary"
	"math/bits"

	"fermion.dev/fermion/internal/sli"
)

// The store's form of a latency sketch: sli.Sketch.AppendBinary's header (zero count,
// sum, max, bucket count), then, when there are buckets, one form byte, the first
// bucket's gap as a uvarint, and a bit stream holding every other bucket's gap and
// every bucket's count in Exp-Golomb codes:
//
//   - a gap g (2 or more: neighbouring buckets differ by at least one index) as
//     EG₀(g − 1), one bit for neighbours;
//   - a count, by the form byte: EGₖ(c − 1), or EGₖ of the zig-zagged difference from
//     the previous bucket's count (a smooth histogram of many requests: a group window
//     or hour). k (0–15) and the mode are chosen per sketch for the fewest bits.
//
// EGₖ(v) writes v + 2ᵏ in binary preceded by as many zero bits as it has bits past
// k + 1: small values take few bits, no value is out of range. For a 10-s interval of
// a hello-like load (100 requests over ~60 buckets) this is about 30 bytes of buckets
// where the byte-per-bucket form took ~65: the detail tier holds 1.8 million such
// sketches at the fleet budget (bench/RESULTS.md, "Fleet SLI store at steady state").
// Counts past 2⁴⁸ (no real interval) switch to formPairs: gap and count as uvarints.

const (
	formDelta = 1 << 4 // counts as differences from the previous bucket's
	formPairs = 0xff   // gap and count uvarint pairs, as AppendBinary
	// maxBitCount bounds the counts the bit form writes, so that no code overflows
	// 64 bits (a zig-zagged difference doubles its magnitude).
	maxBitCount = 1 << 48
)

// egBits is the length of EGₖ(v) in bits.
func egBits(v uint64, k int) int {
	n := bits.Len64(v + 1<<k)
	return 2*n - 1 - k
}

func zigzag(d int64) uint64 { return uint64(d<<1) ^ uint64(d>>63) }

func unzigzag(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

// bitWriter appends bits, most significant first, to b.
type bitWriter struct {
	b    []byte
	acc  uint64 // pending bits, right-aligned
	nacc int
}

// write appends the low n bits of v (n ≤ 64).
func (w *bitWriter) write(v uint64, n int) {
	for n > 0 {
		take := min(n, 56-w.nacc)
		chunk := v >> (n - take)
		if take < 64 {
			chunk &= 1<<take - 1
		}
		w.acc = w.acc<<take | chunk
		w.nacc += take
		n -= take
		for w.nacc >= 8 {
			w.b = append(w.b, byte(w.acc>>(w.nacc-8)))
			w.nacc -= 8
		}
	}
}

// eg appends EGₖ(v).
func (w *bitWriter) eg(v uint64, k int) {
	x := v + 1<<k
	n := bits.Len64(x)
	w.write(0, n-1-k)
	w.write(x, n)
}

// flush pads the last byte with zeros and returns the bytes.
func (w *bitWriter) flush() []byte {
	if w.nacc > 0 {
		w.b = append(w.b, byte(w.acc<<(8-w.nacc)))
		w.nacc = 0
	}
	return w.b
}

// bitReader reads what bitWriter wrote.
type bitReader struct {
	b   []byte
	pos int // in bits
	bad bool
}

func (r *bitReader) bit() uint64 {
	i := r.pos >> 3
	if i >= len(r.b) {
		r.bad = true
		return 0
	}
	v := uint64(r.b[i]>>(7-r.pos&7)) & 1
	r.pos++
	return v
}

// peek64 is the next 64 bits, zero-padded past the end.
func (r *bitReader) peek64() uint64 {
	i, sh := r.pos>>3, r.pos&7
	if i+9 <= len(r.b) {
		return binary.BigEndian.Uint64(r.b[i:])<<sh | uint64(r.b[i+8])>>(8-sh)
	}
	var buf [9]byte
	copy(buf[:], r.b[min(i, len(r.b)):])
	v := binary.BigEndian.Uint64(buf[:8])
	return v<<sh | uint64(buf[8])>>(8-sh)
}

func (r *bitReader) read(n int) uint64 {
	if n == 0 {
		return 0
	}
	if r.pos+n > 8*len(r.b) {
		r.bad = true
		return 0
	}
	if n <= 56 {
		v := r.peek64() >> (64 - n)
		r.pos += n
		return v
	}
	hi := r.read(n - 32)
	return hi<<32 | r.read(32)
}

// eg reads EGₖ.
func (r *bitReader) eg(k int) uint64 {
	z := bits.LeadingZeros64(r.peek64())
	if z > 63-k {
		r.bad = true // more than any value of 64 bits: not written by eg
		return 0
	}
	r.pos += z
	x := r.read(z + 1 + k)
	return x - 1<<k
}

// appendSketch appends sk in the store's form (above).
func appendSketch(b []byte, sk *sli.Sketch) []byte {
	var buf [1024]byte
	std := sk.AppendBinary(buf[:0])
	var h [4]uint64
	rest := uvarints(std, h[:])
	pairsAt := len(std) - len(rest)
	b = append(b, std[:pairsAt]...)
	nb := int(h[3])
	if nb == 0 {
		return b
	}
	var pairs [2 * 64]uint64
	gc := pairs[:0]
	if nb > len(pairs)/2 {
		gc = make([]uint64, 0, 2*nb)
	}
	big := false
	for range nb {
		var p [2]uint64
		rest = uvarints(rest, p[:])
		gc = append(gc, p[0], p[1])
		big = big || p[1] >= maxBitCount || p[1] == 0
	}
	if big {
		b = append(b, formPairs)
		return append(b, std[pairsAt:]...)
	}
	// Choose the mode and k with the fewest bits (gaps cost the same in both). A
	// value of bit length l costs about 2·max(l, k+1) − 1 − k bits in EGₖ (a carry
	// may add two), so counting the values of each length prices every k at once.
	var lens [2][65]int
	prev := uint64(0)
	for i := 0; i < len(gc); i += 2 {
		c := gc[i+1]
		lens[0][bits.Len64(c-1)]++
		lens[1][bits.Len64(zigzag(int64(c)-int64(prev)))]++
		prev = c
	}
	form, best := 0, -1
	for mode := range lens {
		var used [65]uint8 // the lengths present, so each k costs a few steps
		nu := 0
		for l, n := range lens[mode] {
			if n > 0 {
				used[nu] = uint8(l)
				nu++
			}
		}
		for k := range min(16, int(used[nu-1])+1) {
			cost := 0
			for _, l := range used[:nu] {
				cost += lens[mode][l] * (2*max(int(l), k+1) - 1 - k)
			}
			if best < 0 || cost < best {
				form, best = mode*formDelta|k, cost
			}
		}
	}
	b = append(b, byte(form))
	b = binary.AppendUvarint(b, gc[0])
	w := bitWriter{b: b}
	k := form & 15
	prev = 0
	for i := 0; i < len(gc); i += 2 {
		if i > 0 {
			w.eg(gc[i]-1, 0)
		}
		c := gc[i+1]
		if form&formDelta != 0 {
			w.eg(zigzag(int64(c)-int64(prev)), k)
		} else {
			w.eg(c-1, k)
		}
		prev = c
	}
	return w.flush()
}

// mergeSketch adds the sketch appendSketch wrote in b to dst.
func mergeSketch(dst *sli.Sketch, b []byte) {
	var buf [1024]byte
	var h [4]uint64
	rest := uvarints(b, h[:])
	std := append(buf[:0], b[:len(b)-len(rest)]...)
	nb := h[3]
	if nb > 0 {
		if len(rest) == 0 {
			return // not written by appendSketch: a bug, leave dst as it was
		}
		form := rest[0]
		rest = rest[1:]
		if form == formPairs {
			std = append(std, rest...)
		} else {
			first, n := binary.Uvarint(rest)
			if n <= 0 {
				return
			}
			r := bitReader{b: rest[n:]}
			k := int(form & 15)
			prev := uint64(0)
			for i := range nb {
				gap := first
				if i > 0 {
					gap = r.eg(0) + 1
				}
				var c uint64
				if form&formDelta != 0 {
					c = uint64(int64(prev) + unzigzag(r.eg(k)))
				} else {
					c = r.eg(k) + 1
				}
				if r.bad {
					return
				}
				prev = c
				std = binary.AppendUvarint(std, gap)
				std = binary.AppendUvarint(std, c)
			}
		}
	}
	_ = dst.MergeBinary(std) // checks the shape; written by appendSketch
}
