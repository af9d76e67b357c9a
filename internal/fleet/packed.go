package fleet

import (
	"encoding/binary"
	"slices"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// stored is a summary as the store keeps it: one byte slice (the counts, the reason
// maps, then the latency sketch, bit-packed). Its key, node and interval are not
// repeated: the series and the window or detail that holds it know them. The store
// holds millions of these (20,000 series × 90 detail intervals at the fleet budget),
// so one allocation of ~75 bytes each for a hello-like load, instead of a Summary
// struct, three maps and a sketch (~1 KiB), is what keeps the fleet under its memory
// budget (bench/RESULTS.md, "Fleet SLI store" and "Fleet SLI store at steady state").
//
// Layout: a 16-bit mask (two bytes, little-endian) saying which of the 13 head fields
// — seq, status[0..4], other, cold, memory, cpu (ns), outbound, denials, backlog — and
// which of the three reason maps — instance starts, discards, limit rejections — are
// not zero; the non-zero head fields as uvarints; each non-empty map as a count and
// that many (name length, name, n); then the sketch (appendSketch, bitsketch.go). Most
// of an interval's fields are zero (no 1xx, 3xx or 4xx, no denials, no discards), and
// a zero costs no byte.
type stored struct {
	b []byte
}

// nHead is the number of head fields before the reason maps.
const nHead = 13

// head returns s's head fields in layout order.
func head(s *sli.Summary) [nHead]uint64 {
	return [nHead]uint64{s.Seq, s.Status[0], s.Status[1], s.Status[2], s.Status[3], s.Status[4],
		s.OtherStatus, s.ColdStarts, s.MemoryMaxBytes, uint64(max(s.CPUTime, 0)), // validated ≥ 0 on the wire
		s.OutboundErrors, s.PolicyDenials, s.TelemetryBacklog}
}

// encodeStored appends the encoding of s (its Latency may be nil) to b.
func encodeStored(b []byte, s *sli.Summary) []byte {
	h := head(s)
	maps := [...]map[string]uint64{s.InstanceStarts, s.Discards, s.LimitRejections}
	var mask uint16
	for i, v := range h {
		if v != 0 {
			mask |= 1 << i
		}
	}
	for i, m := range maps {
		if len(m) > 0 {
			mask |= 1 << (nHead + i)
		}
	}
	b = append(b, byte(mask), byte(mask>>8))
	for _, v := range h {
		if v != 0 {
			b = binary.AppendUvarint(b, v)
		}
	}
	var keys [8]string // reasons per map: a handful; no allocation to sort them
	for _, m := range maps {
		if len(m) == 0 {
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(m)))
		ks := keys[:0]
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		for _, k := range ks {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = binary.AppendUvarint(b, m[k])
		}
	}
	lat := s.Latency
	if lat == nil {
		lat = &sli.Sketch{}
	}
	return appendSketch(b, lat)
}

// readHead reads the mask and the head fields from b into h and returns the rest and
// the mask. b is always the store's own encoding; a short one (a bug) reads as zeros.
func readHead(b []byte, h *[nHead]uint64) ([]byte, uint16) {
	if len(b) < 2 {
		return nil, 0
	}
	mask := uint16(b[0]) | uint16(b[1])<<8
	b = b[2:]
	for i := range h {
		if mask&(1<<i) == 0 {
			continue
		}
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, 0
		}
		h[i] = v
		b = b[n:]
	}
	return b, mask
}

// eachReason calls fn with every (map index, name, n) of the reason maps at the front
// of b (after readHead, with its mask) and returns the rest (nil on a short buffer).
func eachReason(b []byte, mask uint16, fn func(m int, name []byte, n uint64)) []byte {
	for m := range 3 {
		if mask&(1<<(nHead+m)) == 0 {
			continue
		}
		var n [1]uint64
		b = uvarints(b, n[:])
		for range n[0] {
			var l [1]uint64
			b = uvarints(b, l[:])
			if uint64(len(b)) < l[0] {
				return nil
			}
			k := b[:l[0]]
			b = b[l[0]:]
			var v [1]uint64
			b = uvarints(b, v[:])
			fn(m, k, v[0])
		}
	}
	return b
}

// uvarints reads n uvarints from b into out and returns the rest. b is always the
// store's own encoding, so a short read is a bug; it yields zeros rather than a panic.
func uvarints(b []byte, out []uint64) []byte {
	for i := range out {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			clear(out[i:])
			return nil
		}
		out[i] = v
		b = b[n:]
	}
	return b
}

// decode fills everything of dst but Key, Node, Start, End and Latency from p and
// returns the encoded sketch.
func (p *stored) decode(dst *sli.Summary) []byte {
	var h [nHead]uint64
	b, mask := readHead(p.b, &h)
	dst.Seq = h[0]
	copy(dst.Status[:], h[1:6])
	dst.OtherStatus, dst.ColdStarts, dst.MemoryMaxBytes = h[6], h[7], h[8]
	dst.CPUTime = time.Duration(h[9])
	dst.OutboundErrors, dst.PolicyDenials, dst.TelemetryBacklog = h[10], h[11], h[12]
	maps := [...]*map[string]uint64{&dst.InstanceStarts, &dst.Discards, &dst.LimitRejections}
	for _, m := range maps {
		*m = nil
	}
	return eachReason(b, mask, func(i int, name []byte, n uint64) {
		if *maps[i] == nil {
			*maps[i] = map[string]uint64{}
		}
		(*maps[i])[string(name)] = n
	})
}

// requests and errors are the availability SLI's events of p, read without decoding
// the rest.
func (p *stored) requestsErrors() (requests, errors uint64) {
	var h [nHead]uint64
	readHead(p.b, &h)
	for _, c := range h[1:7] {
		requests += c
	}
	return requests, h[5]
}

// pack encodes src, its sketch included.
func pack(src *sli.Summary) stored {
	return stored{b: exact(encodeStored(make([]byte, 0, 256), src))}
}

// exact copies b into an allocation of its own size: append's doubling would leave
// up to half of every stored summary's bytes unused, and the store keeps millions.
func exact(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}

// add merges src into p. scratch is the writer's sketch.
func (p *stored) add(src *sli.Summary, scratch *sli.Sketch) {
	var c sli.Summary
	scratch.Reset()
	mergeSketch(scratch, p.decode(&c))
	c.Latency = scratch
	o := *src
	o.Key, o.Node, o.Start, o.End = c.Key, c.Node, c.Start, c.End
	_ = sli.Merge(&c, o) // keys are equal by construction
	// A fresh slice: readers never hold p.b past the lock, but a slice of its own size
	// is what the store should keep anyway.
	p.b = exact(encodeStored(make([]byte, 0, 2*len(p.b)+64), &c))
}

// mergeTo adds p to dst (whose Latency is set) as sli.Merge would, keeping dst's key,
// node and interval. It is the query's inner loop (once per stored interval in the
// window), so it adds straight from the encoding without decoding into maps first.
func (p *stored) mergeTo(dst *sli.Summary) {
	var h [nHead]uint64
	b, mask := readHead(p.b, &h)
	dst.Seq = max(dst.Seq, h[0])
	for i := range dst.Status {
		dst.Status[i] += h[1+i]
	}
	dst.OtherStatus += h[6]
	dst.ColdStarts += h[7]
	dst.MemoryMaxBytes = max(dst.MemoryMaxBytes, h[8])
	dst.CPUTime += time.Duration(h[9])
	dst.OutboundErrors += h[10]
	dst.PolicyDenials += h[11]
	dst.TelemetryBacklog = max(dst.TelemetryBacklog, h[12])
	maps := [...]*map[string]uint64{&dst.InstanceStarts, &dst.Discards, &dst.LimitRejections}
	b = eachReason(b, mask, func(i int, name []byte, n uint64) {
		if *maps[i] == nil {
			*maps[i] = map[string]uint64{}
		}
		(*maps[i])[string(name)] += n // no allocation once the name is in the map
	})
	if b == nil && len(p.b) > 0 {
		return // a short buffer: not written by encodeStored
	}
	mergeSketch(dst.Latency, b)
}

// summary returns p as a self-contained summary under key and node, spanning
// [start, end).
func (p *stored) summary(key sli.Key, node string, start, end time.Time) sli.Summary {
	var c sli.Summary
	c.Latency = &sli.Sketch{}
	mergeSketch(c.Latency, p.decode(&c))
	c.Key, c.Node, c.Start, c.End = key, node, start, end
	return c
}

// countAtMost is the latency SLI's good events of p.
func (p *stored) countAtMost(d time.Duration, scratch *sli.Sketch) uint64 {
	var c sli.Summary
	scratch.Reset()
	mergeSketch(scratch, p.decode(&c))
	return scratch.CountAtMost(d)
}

// fingerprint is p's fingerprint (see fingerprintOf).
func (p *stored) fingerprint() fingerprint {
	if p == nil {
		return fingerprint{}
	}
	var c sli.Summary
	p.decode(&c)
	return fingerprintOf(&c)
}
