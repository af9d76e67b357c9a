package v1

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// --- Traffic split on the node (issue 15) ---

// Canary is the second version of a weight step: the node runs it beside the
// assignment's stable Version, both warm, and sends it Weight percent of each route's
// requests. Dropping Canary from the assignment removes it (drained); making it the
// assignment's Version with no Canary promotes it without a cold start.
type Canary struct {
	Version Version `json:"version"`
	// Weight is the percent of each route's requests the canary serves, 0–100 (0: warm,
	// no traffic; 100: all of it, the stable version still warm).
	Weight int `json:"weight"`
	// Sticky keeps a client on one side: "header:NAME" or "cookie:NAME" names the
	// value the gateway hashes (as rollout.Spec.Sticky); empty splits each request
	// anew.
	Sticky string `json:"sticky,omitempty"`
}

// Weight bounds, in percent.
const (
	MinCanaryWeight = 0
	MaxCanaryWeight = 100
)

var stickyNameRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,128}$`)

// ParseSticky checks a stickiness key, "header:NAME" or "cookie:NAME" (the name an
// HTTP token), and returns it with a header name in canonical form.
func ParseSticky(v string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(v, ":")
	if !ok || (kind != "header" && kind != "cookie") {
		return "", "", fmt.Errorf("%q is not a stickiness key; write header:NAME or cookie:NAME, such as header:X-User", v)
	}
	if !stickyNameRE.MatchString(name) {
		return "", "", fmt.Errorf("%q: %q is not a valid %s name (letters, digits and !#$%%&'*+.^_|~-, at most 128)", v, name, kind)
	}
	if kind == "header" {
		name = http.CanonicalHeaderKey(name)
	}
	return kind, name, nil
}

// ValidateCanary checks an assignment's canary against its stable version: a weight
// in range, a valid stickiness key, the same app and the same routes (the split is per
// route: a route only one side serves could not be split), and a different digest.
// Nil when there is no canary.
func (a *Assignment) ValidateCanary() *Error {
	c := a.Canary
	if c == nil {
		return nil
	}
	bad := func(field, format string, args ...any) *Error {
		return &Error{Code: CodeBadRequest, Field: "canary." + field,
			Message: fmt.Sprintf("deployment %s: ", a.Deployment) + fmt.Sprintf(format, args...)}
	}
	if c.Weight < MinCanaryWeight || c.Weight > MaxCanaryWeight {
		return bad("weight", "%d is out of range: give a percent from %d to %d", c.Weight, MinCanaryWeight, MaxCanaryWeight)
	}
	if c.Sticky != "" {
		if _, _, err := ParseSticky(c.Sticky); err != nil {
			return bad("sticky", "%v", err)
		}
	}
	if c.Version.App != a.Version.App {
		return bad("version.app", "the canary is app %q but the stable version is app %q: a canary must be a version of the same app", c.Version.App, a.Version.App)
	}
	if c.Version.Digest == "" {
		return bad("version.digest", "a digest is required")
	}
	if c.Version.Digest == a.Version.Digest {
		return bad("version.digest", "the canary has the stable version's digest %s: promote instead (make it the version, without a canary)", c.Version.Digest)
	}
	if !sameRoutes(c.Version.Routes, a.Version.Routes) {
		return bad("version.routes", "the canary serves routes %v but the stable version serves %v: a weight split needs the same routes on both sides", c.Version.Routes, a.Version.Routes)
	}
	return nil
}

func sameRoutes(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// CanaryStatus is what a node reports of a deployment's canary: its version, state
// (the instance states), live instances and the weight it serves now.
type CanaryStatus struct {
	Digest    string `json:"digest"`
	Version   string `json:"version"`
	State     string `json:"state"`
	Instances int    `json:"instances"`
	Weight    int    `json:"weight"` // percent of each route's requests, as assigned
	LastError string `json:"lastError,omitempty"`
}
