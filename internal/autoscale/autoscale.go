// Package autoscale sizes a function version's warm instance pool on one node from the
// concurrency it served: the highest concurrency seen within a window, divided by a
// target utilization, so that a pool keeps headroom for traffic that grows and gives
// instances back only once a peak is a window old (Knative's target-utilization and
// stable-window model, for single-request Wasm instances). Pure logic: the caller
// feeds it observations and asks for the size.
package autoscale

import "time"

// MaxBuckets bounds the memory of a Recommender: the window is kept in this many
// buckets (fewer when that would make them shorter than MinBucket).
const MaxBuckets = 120

// MinBucket is the shortest bucket, and MinWindow the shortest window.
const (
	MinBucket = 10 * time.Millisecond
	MinWindow = 100 * time.Millisecond
)

// Config is a pool's sizing rule.
type Config struct {
	// Min and Max bound the recommendation (min_warm and max_instances).
	Min, Max int
	// Window is how long a peak counts (the pool's idle_timeout).
	Window time.Duration
	// TargetPercent is the share of the warm pool the peak may use, 1 to 100: 100 keeps
	// exactly the peak, 70 keeps 1/0.7 of it.
	TargetPercent int
}

// Recommender keeps the peak concurrency of each bucket of the window.
type Recommender struct {
	cfg    Config
	width  time.Duration // one bucket's span
	peaks  []int         // ring of per-bucket peaks
	bucket int64         // the bucket number (time / width) peaks[bucket%len] holds
}

// New returns a Recommender for cfg; fields out of range are clamped (Window at least
// MinWindow, TargetPercent into 1..100, Max at least Min).
func New(cfg Config) *Recommender {
	cfg.Min = max(cfg.Min, 0)
	cfg.Max = max(cfg.Max, cfg.Min)
	cfg.TargetPercent = min(max(cfg.TargetPercent, 1), 100)
	cfg.Window = max(cfg.Window, MinWindow)
	width := max(MinBucket, cfg.Window/MaxBuckets)
	n := int((cfg.Window + width - 1) / width)
	return &Recommender{cfg: cfg, width: width, peaks: make([]int, n), bucket: -1}
}

// Observe records that concurrency requests were in flight at now.
func (r *Recommender) Observe(now time.Time, concurrency int) {
	r.advance(now)
	i := int(r.bucket % int64(len(r.peaks)))
	r.peaks[i] = max(r.peaks[i], concurrency)
}

// advance moves the ring to now's bucket, clearing the buckets it passes.
func (r *Recommender) advance(now time.Time) {
	b := now.UnixNano() / int64(r.width)
	if b <= r.bucket {
		return // same bucket, or a clock that stepped back: keep counting here
	}
	gap := b - r.bucket
	if r.bucket < 0 || gap >= int64(len(r.peaks)) {
		clear(r.peaks)
	} else {
		for k := int64(1); k <= gap; k++ {
			r.peaks[(r.bucket+k)%int64(len(r.peaks))] = 0
		}
	}
	r.bucket = b
}

// Peak is the highest concurrency observed within the window before now.
func (r *Recommender) Peak(now time.Time) int {
	r.advance(now)
	p := 0
	for _, v := range r.peaks {
		p = max(p, v)
	}
	return p
}

// Desired is the warm pool size for now: the window's peak over the target
// utilization, rounded up, within Min and Max.
func (r *Recommender) Desired(now time.Time) int {
	p := r.Peak(now)
	d := (p*100 + r.cfg.TargetPercent - 1) / r.cfg.TargetPercent
	return min(max(d, r.cfg.Min), r.cfg.Max)
}
