package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"fermion.dev/fermion/internal/telemetry"
)

// A weight split sends part of a route's requests to a second version of its
// deployment (a canary) that the node runs beside the first, both warm. The choice:
//
//   - Without stickiness, a per-route counter spreads the canary's share evenly: the
//     n-th request goes to the canary when ⌊(n+1)·w/10000⌋ > ⌊n·w/10000⌋, so every
//     10,000 consecutive requests hold exactly w canary requests, spaced as evenly as
//     whole requests allow (a smooth weighted round robin for two sides). One atomic
//     add, no lock, no random state; see docs/RATIONALE.md "Why a counter, not a
//     random draw, splits traffic?".
//   - With stickiness (header:NAME or cookie:NAME), the value's FNV-1a hash picks a
//     bucket in [0, 10000) and buckets below w go to the canary. Every node hashes
//     alike, so a client stays on its side across nodes and restarts, and raising w
//     keeps everyone already on the canary there. A request without the header falls
//     back to the counter; one without the cookie gets it (a random value, whose hash
//     chooses), so the client sticks from its first request on.
//
// Weights change by replacing the routing table (SetRoutes), which is atomic for every
// route at once; requests in flight finish on the side they were sent to.

// Split is a route's second target and its share of the route's requests.
type Split struct {
	Target Target
	// Weight is the canary's share in basis points: 0 (none) to 10000 (all).
	Weight int
	// Sticky is "", "header:NAME" or "cookie:NAME".
	Sticky string
}

// MaxWeight is a Split's full weight, in basis points.
const MaxWeight = 10000

// splitState is a table's per-route split: the parsed stickiness and the counter.
type splitState struct {
	target Target
	weight uint64
	header string // canonical header name, or ""
	cookie string // cookie name, or ""
	tel    *routeTelemetry
	n      atomic.Uint64
}

func newSplitState(s *Split) (*splitState, error) {
	if s.Target == nil {
		return nil, fmt.Errorf("split: no canary target")
	}
	if s.Weight < 0 || s.Weight > MaxWeight {
		return nil, fmt.Errorf("split weight %d: want 0 to %d basis points", s.Weight, MaxWeight)
	}
	st := &splitState{target: s.Target, weight: uint64(s.Weight)}
	if s.Sticky != "" {
		kind, name, ok := strings.Cut(s.Sticky, ":")
		switch {
		case !ok || name == "":
			return nil, fmt.Errorf("split sticky %q: want header:NAME or cookie:NAME", s.Sticky)
		case kind == "header":
			st.header = http.CanonicalHeaderKey(name)
		case kind == "cookie":
			st.cookie = name
		default:
			return nil, fmt.Errorf("split sticky %q: want header:NAME or cookie:NAME", s.Sticky)
		}
	}
	return st, nil
}

// pickCounter reports whether the next request goes to the canary.
func (s *splitState) pickCounter() bool {
	n := (s.n.Add(1) - 1) % MaxWeight
	return (n+1)*s.weight/MaxWeight > n*s.weight/MaxWeight
}

// pickValue reports whether a client with the sticky value v goes to the canary.
func (s *splitState) pickValue(v string) bool {
	return bucket(v) < s.weight
}

// bucket is v's FNV-1a 64 hash in [0, MaxWeight): the same on every node.
func bucket(v string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(v); i++ {
		h ^= uint64(v[i])
		h *= 1099511628211
	}
	return h % MaxWeight
}

// pick chooses the side of one request: canary reports the canary; setCookie, when
// not empty, is a Set-Cookie value the response must carry (cookie stickiness, a
// client without the cookie).
func (s *splitState) pick(r *http.Request) (canary bool, setCookie string) {
	switch {
	case s.header != "":
		if v := r.Header[s.header]; len(v) > 0 && v[0] != "" {
			return s.pickValue(v[0]), ""
		}
	case s.cookie != "":
		if c, err := r.Cookie(s.cookie); err == nil && c.Value != "" {
			return s.pickValue(c.Value), ""
		}
		v := telemetry.NewRequestID()
		c := http.Cookie{Name: s.cookie, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
		return s.pickValue(v), c.String()
	}
	return s.pickCounter(), ""
}
