package fleet

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/diag"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/slo"
)

// Slowest keeps the fleet's slowest recent requests: the exemplars agents send with
// their summaries (sli.Summary.Slowest), for GET /v1/slis/slowest. It is a ring of
// one-minute buckets over v1.SlowestWindowMax; each bucket keeps, per (app, version),
// the SlowestPerVersion slowest requests that started in that minute, and holds at most
// SlowestMaxVersions versions, so memory is bounded whatever the fleet sends:
//
//	16 buckets × 1,000 versions × 5 requests = 80,000 requests, 21.5 MiB measured
//	(BenchmarkSlowestFull) plus their strings (~60 B each) at most;
//	1,000 nodes × 20 versions (20 app versions fleet-wide) keep 16 × 20 × 5 = 1,600
//	requests, about 0.5 MB.
//
// It is fed the raw summaries the Store accepted (not duplicates), by the Ingest.
// Pure: the caller passes now. Safe for concurrent use; mu is a leaf.
type Slowest struct {
	place func(node string) (region, zone string)

	mu      sync.Mutex
	buckets map[int64]*slowBucket // by bucket start, Unix ms
	dropped uint64                // exemplars refused: too old, from the future, or a full bucket
}

const (
	// SlowestPerVersion is how many requests a bucket keeps per (app, version): the
	// slowest. A fleet-wide top-n query is exact for n up to it per version and minute.
	SlowestPerVersion = 5
	// SlowestMaxVersions bounds the versions one bucket holds.
	SlowestMaxVersions = 1000
	slowBucketMs       = int64(time.Minute / time.Millisecond)
	// slowSkew is how far in the future a request may start (a node's clock ahead).
	slowSkew = time.Minute
)

type slowVer struct{ app, version string }

type slowBucket struct {
	byVer map[slowVer][]SlowRequest // each slowest first, at most SlowestPerVersion
}

// SlowRequest is one kept exemplar with where it came from.
type SlowRequest struct {
	App, Version, Node, Route string
	sli.Exemplar
}

// NewSlowest returns an empty ring. place, when not nil, gives a node's region and
// zone for the region and zone filters.
func NewSlowest(place func(node string) (region, zone string)) *Slowest {
	return &Slowest{place: place, buckets: map[int64]*slowBucket{}}
}

// Add keeps s's exemplars that are among the slowest of their minute.
func (r *Slowest) Add(s *sli.Summary, now time.Time) {
	if len(s.Slowest) == 0 {
		return
	}
	nowMs := now.UnixMilli()
	oldest := nowMs - int64(v1.SlowestWindowMax/time.Millisecond) - slowBucketMs
	newest := nowMs + int64(slowSkew/time.Millisecond)
	k := slowVer{s.Key.Deployment, s.Key.Version}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range s.Slowest {
		e := &s.Slowest[i]
		if e.Start < oldest || e.Start > newest {
			r.dropped++
			continue
		}
		bs := e.Start - e.Start%slowBucketMs
		b := r.buckets[bs]
		if b == nil {
			b = &slowBucket{byVer: map[slowVer][]SlowRequest{}}
			r.buckets[bs] = b
		}
		list, ok := b.byVer[k]
		if !ok && len(b.byVer) >= SlowestMaxVersions {
			r.dropped++
			continue
		}
		if len(list) == SlowestPerVersion && e.Duration <= list[len(list)-1].Duration {
			continue
		}
		at, _ := slices.BinarySearchFunc(list, e.Duration, func(x SlowRequest, d time.Duration) int { return cmp.Compare(d, x.Duration) })
		if len(list) == SlowestPerVersion {
			list = list[:len(list)-1]
		}
		b.byVer[k] = slices.Insert(list, at, SlowRequest{App: k.app, Version: k.version, Node: s.Node, Route: s.Key.Route, Exemplar: *e})
	}
}

// Prune drops the buckets older than the window.
func (r *Slowest) Prune(now time.Time) {
	oldest := now.UnixMilli() - int64(v1.SlowestWindowMax/time.Millisecond) - slowBucketMs
	r.mu.Lock()
	defer r.mu.Unlock()
	for bs := range r.buckets {
		if bs+slowBucketMs <= oldest {
			delete(r.buckets, bs)
		}
	}
}

// SlowestStats describes what the ring holds.
type SlowestStats struct {
	Buckets, Versions, Requests int
	Dropped                     uint64
}

// Stats counts what the ring holds.
func (r *Slowest) Stats() SlowestStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := SlowestStats{Buckets: len(r.buckets), Dropped: r.dropped}
	for _, b := range r.buckets {
		st.Versions += len(b.byVer)
		for _, l := range b.byVer {
			st.Requests += len(l)
		}
	}
	return st
}

// SlowestQuery selects slow requests: those matching every non-empty filter that
// started within Window before now, at most Limit, slowest first.
type SlowestQuery struct {
	App, Version, Node, Region, Zone string
	Window                           time.Duration
	Limit                            int
}

var slowestParams = []string{"app", "version", "node", "region", "zone", "window", "limit"}

// ParseSlowestQuery reads /v1/slis/slowest's parameters; each at most once, unknown
// ones refused with the closest valid name.
func ParseSlowestQuery(v url.Values) (SlowestQuery, error) {
	q := SlowestQuery{Window: v1.SlowestWindowMax, Limit: v1.SlowestLimitDefault}
	for _, k := range slices.Sorted(maps.Keys(v)) {
		if !slices.Contains(slowestParams, k) {
			msg := fmt.Sprintf("unknown parameter; use %s", strings.Join(slowestParams, ", "))
			if c := diag.Closest(k, slowestParams); c != "" {
				msg = fmt.Sprintf("unknown parameter; did you mean %s?", c)
			}
			return SlowestQuery{}, &QueryError{Param: k, Message: msg}
		}
		if len(v[k]) != 1 {
			return SlowestQuery{}, &QueryError{Param: k, Message: fmt.Sprintf("given %d times; give it once", len(v[k]))}
		}
		val := v[k][0]
		switch k {
		case "window":
			d, err := slo.ParseWindow(val)
			if err != nil {
				return SlowestQuery{}, &QueryError{Param: k, Message: err.Error()}
			}
			if d > v1.SlowestWindowMax {
				return SlowestQuery{}, &QueryError{Param: k, Message: fmt.Sprintf("%s is longer than the %s the server keeps slow requests for; use %s or less",
					val, slo.FormatWindow(v1.SlowestWindowMax), slo.FormatWindow(v1.SlowestWindowMax))}
			}
			if d < time.Second {
				return SlowestQuery{}, &QueryError{Param: k, Message: fmt.Sprintf("%s is shorter than a second; use e.g. 5m", val)}
			}
			q.Window = d
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > v1.SlowestLimitMax {
				return SlowestQuery{}, &QueryError{Param: k, Message: fmt.Sprintf("%q is not a number from 1 to %d", val, v1.SlowestLimitMax)}
			}
			q.Limit = n
		default:
			if val == "" || len(val) > maxQueryValue {
				return SlowestQuery{}, &QueryError{Param: k, Message: fmt.Sprintf("give a name of 1–%d bytes, or leave the parameter out", maxQueryValue)}
			}
			*map[string]*string{"app": &q.App, "version": &q.Version, "node": &q.Node, "region": &q.Region, "zone": &q.Zone}[k] = val
		}
	}
	return q, nil
}

// Query answers q at now.
func (r *Slowest) Query(q SlowestQuery, now time.Time) v1.SlowestRequests {
	if q.Limit <= 0 {
		q.Limit = v1.SlowestLimitDefault
	}
	if q.Window <= 0 || q.Window > v1.SlowestWindowMax {
		q.Window = v1.SlowestWindowMax
	}
	from := now.Add(-q.Window).UnixMilli()
	var hits []SlowRequest
	r.mu.Lock()
	for bs, b := range r.buckets {
		if bs+slowBucketMs <= from {
			continue
		}
		for k, list := range b.byVer {
			if (q.App != "" && k.app != q.App) || (q.Version != "" && k.version != q.Version) {
				continue
			}
			for _, e := range list {
				if e.Start >= from && (q.Node == "" || e.Node == q.Node) {
					hits = append(hits, e)
				}
			}
		}
	}
	r.mu.Unlock()
	if (q.Region != "" || q.Zone != "") && r.place != nil {
		places := map[string][2]string{}
		hits = slices.DeleteFunc(hits, func(e SlowRequest) bool {
			p, ok := places[e.Node]
			if !ok {
				p[0], p[1] = r.place(e.Node)
				places[e.Node] = p
			}
			return (q.Region != "" && p[0] != q.Region) || (q.Zone != "" && p[1] != q.Zone)
		})
	}
	slices.SortFunc(hits, func(a, b SlowRequest) int {
		if c := cmp.Compare(b.Duration, a.Duration); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Start, a.Start); c != 0 { // ties: the most recent first
			return c
		}
		return slices.Compare(a.TraceID[:], b.TraceID[:])
	})
	hits = hits[:min(len(hits), q.Limit)]
	out := v1.SlowestRequests{Window: slo.FormatWindow(q.Window), Requests: make([]v1.SlowRequest, len(hits))}
	for i, e := range hits {
		out.Requests[i] = v1.SlowRequest{App: e.App, Version: e.Version, Node: e.Node, Route: e.Route, Method: e.Method, Path: e.Path,
			Status: e.Status, DurationMs: float64(e.Duration.Microseconds()) / 1000, Start: time.UnixMilli(e.Start).UTC(),
			TraceID: hex.EncodeToString(e.TraceID[:]), Sampled: e.Sampled, Instance: e.Instance}
	}
	return out
}
