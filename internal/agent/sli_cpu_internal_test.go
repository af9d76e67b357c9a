package agent

import (
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// TestSLICPUTimeFromCounter: each interval's summary carries the guest CPU time the
// version used since the last interval (the growth of fermion_guest_cpu_seconds_total),
// none when it used none, and the whole counter again when the version's series were
// made anew (a counter reset).
func TestSLICPUTimeFromCounter(t *testing.T) {
	m := telemetry.NewMetrics("test")
	start := time.Now()
	agg := sli.NewAggregator(sli.Config{Node: "n1", Start: start})
	s := newSLISource(DataPlaneConfig{SLIs: agg}, m)
	s.name("greeter", "hello", "1")
	key := sli.Key{Deployment: "greeter", Version: "1"}

	fm := m.Function("hello", "1")
	steps := []struct {
		name  string
		spend []time.Duration // guest calls before the interval closes
		reset bool            // forget and make the version's series again first
		want  time.Duration
	}{
		{name: "first interval", spend: []time.Duration{3 * time.Millisecond, 4 * time.Millisecond}, want: 7 * time.Millisecond},
		{name: "idle interval", want: 0},
		{name: "only the growth", spend: []time.Duration{5 * time.Millisecond}, want: 5 * time.Millisecond},
		{name: "negative ignored", spend: []time.Duration{-time.Second, time.Millisecond}, want: time.Millisecond},
		{name: "after a reset", reset: true, spend: []time.Duration{2 * time.Millisecond}, want: 2 * time.Millisecond},
	}
	end := start
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.reset {
				m.Forget("hello", "1")
				fm = m.Function("hello", "1")
			}
			for _, d := range st.spend {
				fm.GuestCPU(d)
			}
			end = end.Add(10 * time.Second)
			s.observePools(end)
			var got time.Duration
			for _, sum := range agg.Flush(end) {
				if sum.Key == key {
					got += sum.CPUTime
				}
			}
			if got != st.want {
				t.Fatalf("CPU time %v, want %v", got, st.want)
			}
		})
	}
}
