package telemetry_test

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"fermion.dev/fermion/internal/telemetry"
)

// TestInFlightStripes: the in-flight gauge is the sum of what requests added on any
// stripe, however many goroutines add at once, and 0 once each took away what it added
// on the stripe it added it on.
func TestInFlightStripes(t *testing.T) {
	m := telemetry.NewMetrics("test")
	stripes := []uint32{0, 1, 2, 7, 8, 127, 128, 1 << 20, 1<<32 - 1}
	for _, s := range stripes {
		m.InFlightAdd(s, 1)
	}
	if got := testutil.ToFloat64(m.InFlight); got != float64(len(stripes)) {
		t.Fatalf("in flight = %v after %d adds", got, len(stripes))
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10000 {
				s := uint32(w*10000 + i)
				m.InFlightAdd(s, 1)
				m.InFlightAdd(s, -1)
			}
		})
	}
	wg.Wait()
	for _, s := range stripes {
		m.InFlightAdd(s, -1)
	}
	if got := testutil.ToFloat64(m.InFlight); got != 0 {
		t.Fatalf("in flight = %v once every request ended", got)
	}
}
