package fleet

import (
	"encoding/binary"
	"slices"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// stored is a summary as the store keeps it: one byte slice of uvarints (the counts,
// the reason maps, then the latency sketch, bucket-packed). Its
// key, node and interval are not repeated: the series and the window or detail that
// holds it know them. The store holds millions of these (20,000 series × 90 detail
// intervals at the fleet budget), so one allocation of ~170 bytes each for a hello-like
// load, instead of a Summary struct, three maps and a sketch (~1 KiB), is what keeps
// the fleet under its memory budget (bench/RESULTS.md, "Fleet SLI store").
//
// Layout: seq, status[0..4], other, cold, memory, cpu (ns), outbound, denials,
// backlog, then instance starts, discards and limit rejections (each a count and that
// many (name length, name, n)), then the sketch (appendSketch, bitsketch.go).
type stored struct {
	b []byte
}

// nHead is the number of uvarints before the reason maps.
const nHead = 13

// encodeStored appends the encoding of s (its Latency may be nil) to b.
func encodeStored(b []byte, s *sli.Summary) []byte {
	b = binary.AppendUvarint(b, s.Seq)
	for _, c := range s.Status {
		b = binary.AppendUvarint(b, c)
	}
	b = binary.AppendUvarint(b, s.OtherStatus)
	b = binary.AppendUvarint(b, s.ColdStarts)
	b = binary.AppendUvarint(b, s.MemoryMaxBytes)
	b = binary.AppendUvarint(b, uint64(max(s.CPUTime, 0))) // validated ≥ 0 on the wire
	b = binary.AppendUvarint(b, s.OutboundErrors)
	b = binary.AppendUvarint(b, s.PolicyDenials)
	b = binary.AppendUvarint(b, s.TelemetryBacklog)
	var keys [8]string // reasons per map: a handful; no allocation to sort them
	for _, m := range [...]map[string]uint64{s.InstanceStarts, s.Discards, s.LimitRejections} {
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
	b := uvarints(p.b, h[:])
	dst.Seq = h[0]
	copy(dst.Status[:], h[1:6])
	dst.OtherStatus, dst.ColdStarts, dst.MemoryMaxBytes = h[6], h[7], h[8]
	dst.CPUTime = time.Duration(h[9])
	dst.OutboundErrors, dst.PolicyDenials, dst.TelemetryBacklog = h[10], h[11], h[12]
	for _, m := range [...]*map[string]uint64{&dst.InstanceStarts, &dst.Discards, &dst.LimitRejections} {
		var n [1]uint64
		b = uvarints(b, n[:])
		*m = nil
		for range n[0] {
			var l [1]uint64
			b = uvarints(b, l[:])
			if uint64(len(b)) < l[0] {
				return nil
			}
			k := string(b[:l[0]])
			b = b[l[0]:]
			var v [1]uint64
			b = uvarints(b, v[:])
			if *m == nil {
				*m = make(map[string]uint64, n[0])
			}
			(*m)[k] = v[0]
		}
	}
	return b
}

// requests and errors are the availability SLI's events of p, read without decoding
// the rest.
func (p *stored) requestsErrors() (requests, errors uint64) {
	var h [7]uint64
	uvarints(p.b, h[:])
	for _, c := range h[1:] {
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
	b := uvarints(p.b, h[:])
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
	for _, m := range [...]*map[string]uint64{&dst.InstanceStarts, &dst.Discards, &dst.LimitRejections} {
		var n [1]uint64
		b = uvarints(b, n[:])
		for range n[0] {
			var l [1]uint64
			b = uvarints(b, l[:])
			if uint64(len(b)) < l[0] {
				return
			}
			k := b[:l[0]]
			b = b[l[0]:]
			var v [1]uint64
			b = uvarints(b, v[:])
			if *m == nil {
				*m = map[string]uint64{}
			}
			(*m)[string(k)] += v[0] // no allocation once the name is in the map
		}
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
