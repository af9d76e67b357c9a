package fleet

import (
	"maps"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// stored is a summary as the store keeps it: counts as they are, the latency sketch
// in its encoded form. A sketch in memory is dense over its range (eight bytes per
// bucket between the fastest and slowest request: about 2 KiB for a hello with a cold
// tail); encoded it is a few bytes per non-empty bucket, about 10× less, and the store
// holds hundreds of thousands of them (bench/RESULTS.md, "Fleet SLI store").
type stored struct {
	s   sli.Summary // Latency nil
	lat []byte      // sli.Sketch.AppendBinary
}

// pack copies src under key and node, its sketch merged into scratch and encoded.
func pack(src *sli.Summary, key sli.Key, node string, scratch *sli.Sketch) *stored {
	c := *src
	c.InstanceStarts, c.Discards, c.LimitRejections = maps.Clone(src.InstanceStarts), maps.Clone(src.Discards), maps.Clone(src.LimitRejections)
	c.Key, c.Node = key, node
	scratch.Reset()
	scratch.Merge(src.Latency)
	c.Latency = nil
	return &stored{s: c, lat: encodeExact(scratch)}
}

func encodeExact(sk *sli.Sketch) []byte {
	b := sk.AppendBinary(make([]byte, 0, 64))
	return append(make([]byte, 0, len(b)), b...)
}

// add merges src into p, keeping p's key, node and interval.
func (p *stored) add(src *sli.Summary, scratch *sli.Sketch) {
	scratch.Reset()
	_ = scratch.MergeBinary(p.lat) // written by encodeExact
	c := *src
	c.Key, c.Node = p.s.Key, p.s.Node
	start, end := p.s.Start, p.s.End
	p.s.Latency = scratch
	_ = sli.Merge(&p.s, c) // keys are equal by construction
	p.s.Latency = nil
	p.s.Start, p.s.End = start, end
	p.lat = encodeExact(scratch)
}

// mergeTo adds p to dst (whose Latency is set), under dst's key and node.
func (p *stored) mergeTo(dst *sli.Summary) {
	c := p.s
	c.Key, c.Node = dst.Key, dst.Node
	_ = sli.Merge(dst, c)
	_ = dst.Latency.MergeBinary(p.lat)
}

// summary returns p as a self-contained summary.
func (p *stored) summary() sli.Summary {
	c := p.s.Clone()
	c.Latency = &sli.Sketch{}
	_ = c.Latency.MergeBinary(p.lat)
	return c
}

// countAtMost is the latency SLI's good events of p.
func (p *stored) countAtMost(d time.Duration, scratch *sli.Sketch) uint64 {
	scratch.Reset()
	_ = scratch.MergeBinary(p.lat)
	return scratch.CountAtMost(d)
}
