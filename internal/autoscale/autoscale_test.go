package autoscale

import (
	"testing"
	"time"
)

func TestDesired(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	r := New(Config{Min: 1, Max: 20, Window: 10 * time.Second, TargetPercent: 70})
	if d := r.Desired(t0); d != 1 {
		t.Fatalf("no traffic: desired %d, want min 1", d)
	}
	r.Observe(t0, 7)
	r.Observe(t0.Add(300*time.Millisecond), 3) // a lower value in the same bucket keeps the peak
	if d := r.Desired(t0.Add(time.Second)); d != 10 {
		t.Fatalf("peak 7 at 70%%: desired %d, want 10", d)
	}
	r.Observe(t0.Add(5*time.Second), 2)
	if d := r.Desired(t0.Add(9 * time.Second)); d != 10 {
		t.Fatalf("peak 7 still in the window: desired %d, want 10", d)
	}
	if d := r.Desired(t0.Add(11 * time.Second)); d != 3 {
		t.Fatalf("peak 7 out of the window, 2 in it: desired %d, want 3", d)
	}
	if d := r.Desired(t0.Add(time.Hour)); d != 1 {
		t.Fatalf("an hour later: desired %d, want min 1", d)
	}
	r.Observe(t0.Add(time.Hour), 100)
	if d := r.Desired(t0.Add(time.Hour)); d != 20 {
		t.Fatalf("peak 100: desired %d, want max 20", d)
	}
}

func TestHundredPercentKeepsThePeak(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	r := New(Config{Min: 0, Max: 8, Window: time.Minute, TargetPercent: 100})
	for c := 0; c <= 8; c++ {
		r.Observe(t0, c)
		if d := r.Desired(t0); d != c {
			t.Fatalf("peak %d at 100%%: desired %d", c, d)
		}
	}
}

func TestLongWindowIsBounded(t *testing.T) {
	r := New(Config{Min: 0, Max: 10, Window: 24 * time.Hour, TargetPercent: 100})
	if len(r.peaks) > MaxBuckets {
		t.Fatalf("%d buckets for a day, want at most %d", len(r.peaks), MaxBuckets)
	}
	t0 := time.Unix(1_000_000, 0)
	r.Observe(t0, 5)
	if d := r.Desired(t0.Add(23 * time.Hour)); d != 5 {
		t.Fatalf("23 h into a day's window: desired %d, want 5", d)
	}
	if d := r.Desired(t0.Add(25 * time.Hour)); d != 0 {
		t.Fatalf("past the window: desired %d, want 0", d)
	}
}

func TestClockSteppingBack(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	r := New(Config{Min: 0, Max: 10, Window: 10 * time.Second, TargetPercent: 100})
	r.Observe(t0, 4)
	r.Observe(t0.Add(-time.Minute), 6) // counted in the current bucket
	if d := r.Desired(t0); d != 6 {
		t.Fatalf("desired %d, want 6", d)
	}
}

func TestConfigClamped(t *testing.T) {
	r := New(Config{Min: 3, Max: 1, Window: 0, TargetPercent: 0})
	if r.cfg.Max != 3 || r.cfg.TargetPercent != 1 || r.cfg.Window != MinWindow {
		t.Fatalf("clamped config %+v", r.cfg)
	}
}
