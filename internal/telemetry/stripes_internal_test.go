package telemetry

import "testing"

// TestStripedCount: adds on any stripe value land on one of the stripes, an add undone
// on its stripe leaves nothing, and the sum is the count.
func TestStripedCount(t *testing.T) {
	c := NewStripedCount()
	n := uint32(len(c))
	if n < minStripes || n > maxStripes || n&(n-1) != 0 {
		t.Fatalf("%d stripes, want a power of two in [%d, %d]", n, minStripes, maxStripes)
	}
	for _, s := range []uint32{0, 1, n - 1, n, n + 1, 1<<32 - 1} {
		c.Add(s, 2)
	}
	if got := c.Sum(); got != 12 {
		t.Fatalf("sum = %d, want 12", got)
	}
	if c[1].n.Load() != 4 { // 1 and n+1 are one stripe
		t.Fatalf("stripe 1 = %d, want 4 (stripes %d apart are one)", c[1].n.Load(), n)
	}
	for _, s := range []uint32{0, 1, n - 1, n, n + 1, 1<<32 - 1} {
		c.Add(s, -2)
	}
	for i := range c {
		if v := c[i].n.Load(); v != 0 {
			t.Fatalf("stripe %d = %d after every add was undone", i, v)
		}
	}
}
