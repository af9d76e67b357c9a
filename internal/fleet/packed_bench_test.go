package fleet

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// BenchmarkStored is the cost of the stored form on the store's hot paths for a
// hello-like 10-s interval: pack (every accepted summary), add (the group index merges
// each summary into its group's interval) and mergeTo (a query's inner loop).
func BenchmarkStored(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	s := sli.Summary{Seq: sli.SeqFor(t0, iv), Latency: &sli.Sketch{}, MemoryMaxBytes: 2 << 20,
		CPUTime: 30 * time.Millisecond, InstanceStarts: map[string]uint64{"scale": 1}}
	for range 100 {
		d := time.Duration(300e3 * math.Exp(0.4*rng.NormFloat64()))
		if rng.IntN(100) == 0 {
			d += 20 * time.Millisecond
		}
		s.Latency.Add(d)
		s.Status[1]++
	}
	b.Run("pack", func(b *testing.B) {
		for range b.N {
			pack(&s)
		}
	})
	b.Run("add", func(b *testing.B) {
		var scratch sli.Sketch
		p := pack(&s)
		for i := range b.N {
			if i%64 == 0 { // a group interval of 64 nodes
				p = pack(&s)
			}
			p.add(&s, &scratch)
		}
	})
	b.Run("mergeTo", func(b *testing.B) {
		p := pack(&s)
		dst := sli.Summary{Latency: &sli.Sketch{}}
		for range b.N {
			p.mergeTo(&dst)
		}
	})
}
