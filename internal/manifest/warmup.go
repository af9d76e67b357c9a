package manifest

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// The warmup hook's bounds. The timeout is the hook's own, not limits.timeout: warming
// caches may take longer than any request should, and it delays only the new instance.
const (
	DefaultWarmupTimeout = 5 * time.Second
	minWarmupTimeout     = 10 * time.Millisecond
	maxWarmupTimeout     = 1 * time.Minute
	maxWarmupPath        = 1024
)

// warmup reads component.warmup and component.warmup_timeout:
//
//	[component]
//	warmup = "/warmup?cache=all"   # GET through the guest's handler on each new instance
//	warmup_timeout = "5s"          # 10ms–1m; 5s by default
func (d *decoder) warmup(t map[string]any) (string, time.Duration) {
	path, ok := d.str(t, "component", "warmup")
	if ok {
		if msg := warmupPathProblem(path); msg != "" {
			d.at("component.warmup", "%s", msg)
			ok = false
		}
	}
	_, hasTimeout := t["warmup_timeout"]
	if !hasTimeout {
		if ok {
			return path, DefaultWarmupTimeout
		}
		return "", 0
	}
	if _, present := t["warmup"]; !present {
		d.at("component.warmup_timeout", "is set but component.warmup is not; add warmup = \"/warmup\" (the path each new instance is warmed with) or remove warmup_timeout")
		return "", 0
	}
	timeout, tok := d.duration(t, "component", "warmup_timeout", DefaultWarmupTimeout, true, 0)
	if tok && (timeout < minWarmupTimeout || timeout > maxWarmupTimeout) {
		d.at("component.warmup_timeout", "%s is out of range; give %s to %s (the warmup delays only the new instance, not requests)", timeout, minWarmupTimeout, maxWarmupTimeout)
		tok = false
	}
	if !ok || !tok {
		return "", 0
	}
	return path, timeout
}

// warmupPathProblem checks a warmup target: an origin-form request target, a path
// with an optional query, as a request line carries it.
func warmupPathProblem(p string) string {
	switch {
	case p == "":
		return `must not be empty; give the path to GET on each new instance, such as "/warmup", or remove warmup`
	case len(p) > maxWarmupPath:
		return fmt.Sprintf("is %d bytes; a warmup path may be at most %d", len(p), maxWarmupPath)
	case strings.Contains(strings.SplitN(p, "?", 2)[0], "://") || strings.HasPrefix(p, "//"):
		return fmt.Sprintf("%s is a URL; give only the path, such as %q: the node calls its own instance, never another host", quoteShort(p), "/warmup")
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("%s is not a path; it must start with \"/\", like %q", quoteShort(p), "/"+p)
	case strings.Contains(p, "#"):
		return fmt.Sprintf("%s: a request carries no fragment; remove the part from \"#\"", quoteShort(p))
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f {
			return fmt.Sprintf("%s must not contain spaces or control characters; percent-encode them", quoteShort(p))
		}
	}
	if _, err := url.ParseRequestURI(p); err != nil {
		return fmt.Sprintf("%s is not a valid request path: percent-encode reserved characters", quoteShort(p))
	}
	return ""
}
