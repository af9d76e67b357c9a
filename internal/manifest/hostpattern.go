package manifest

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// HostPattern is a compiled entry of capabilities.allowed_outbound_hosts:
// scheme://host[:port], where scheme is http, https or *, host is a name,
// an IP literal (IPv6 in brackets), * or *.suffix, and port is a number or *.
// Without a port the scheme's default port is meant (80 for http, 443 for
// https, either for *).
//
// The zero HostPattern allows nothing, so a forgotten initialisation fails
// closed.
type HostPattern struct {
	raw     string
	scheme  string     // "http", "https" or "*"
	host    string     // lower-case name, "*" or the suffix after "*." when wildcard
	wild    bool       // host is "*.<host>"
	ip      netip.Addr // valid when the host is an IP literal
	port    int        // 0 means the scheme's default port(s)
	anyPort bool
}

// ParseHostPattern compiles an allowed-outbound-host pattern such as
// "https://api.example.com", "http://127.0.0.1:*" or "*://*.example.org:8443".
func ParseHostPattern(s string) (HostPattern, error) {
	p, msg := parseHostPattern(s)
	if msg != "" {
		return HostPattern{}, fmt.Errorf("parse host pattern %q: %s", s, msg)
	}
	return p, nil
}

// parseHostPattern returns a fix-it message instead of an error so the
// manifest decoder can attach it to a field path without a second prefix.
func parseHostPattern(s string) (HostPattern, string) {
	if s == "" {
		return HostPattern{}, `must not be empty; write it as "https://api.example.com"`
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return HostPattern{}, "must not contain spaces or control characters"
		}
	}
	i := strings.Index(s, "://")
	if i < 0 {
		return HostPattern{}, fmt.Sprintf("missing scheme; write it as %q (or \"*://\" for both http and https)", "https://"+s)
	}
	p := HostPattern{raw: s, scheme: strings.ToLower(s[:i])}
	switch p.scheme {
	case "http", "https", "*":
	default:
		return HostPattern{}, fmt.Sprintf("unsupported scheme %q; use http, https or *", s[:i])
	}
	rest := s[i+3:]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		what := map[byte]string{'/': "path", '?': "query", '#': "fragment"}[rest[j]]
		return HostPattern{}, fmt.Sprintf("remove the %s %q; a pattern is only scheme://host[:port], like %q",
			what, rest[j:], s[:i+3]+rest[:j])
	}
	if j := strings.LastIndex(rest, "@"); j >= 0 {
		return HostPattern{}, fmt.Sprintf("remove the user info %q; credentials are not part of a pattern", rest[:j+1])
	}

	var host, port string
	hasPort := false
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return HostPattern{}, `unclosed "[" in IPv6 address; write it like "http://[::1]:8080"`
		}
		host = rest[1:end]
		after := rest[end+1:]
		if after != "" {
			if after[0] != ':' {
				return HostPattern{}, fmt.Sprintf("unexpected %q after the IPv6 address; only :port may follow", after)
			}
			port, hasPort = after[1:], true
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return HostPattern{}, fmt.Sprintf("%q is not an IPv6 address (zones are not allowed)", host)
		}
		p.ip, p.host = a, a.String()
	} else {
		switch strings.Count(rest, ":") {
		case 0:
			host = rest
		case 1:
			j := strings.IndexByte(rest, ':')
			host, port, hasPort = rest[:j], rest[j+1:], true
		default:
			return HostPattern{}, "IPv6 addresses must be in brackets, like \"http://[::1]:8080\""
		}
		if host == "" {
			return HostPattern{}, `missing host; use a name, an IP address, "*" or "*.example.com"`
		}
		host = strings.ToLower(host)
		switch {
		case host == "*":
			p.host = "*"
		case strings.HasPrefix(host, "*."):
			if msg := checkHostname(host[2:]); msg != "" {
				return HostPattern{}, msg
			}
			p.host, p.wild = strings.TrimSuffix(host[2:], "."), true
		case strings.Contains(host, "*"):
			return HostPattern{}, fmt.Sprintf("wildcard in %q must be the whole host (\"*\") or the first label (\"*.example.com\")", host)
		default:
			if a, err := netip.ParseAddr(host); err == nil {
				p.ip, p.host = a, a.String()
				break
			}
			if msg := checkHostname(host); msg != "" {
				return HostPattern{}, msg
			}
			p.host = strings.TrimSuffix(host, ".")
		}
	}

	if hasPort {
		switch {
		case port == "":
			return HostPattern{}, `empty port after ":"; give a number from 1 to 65535 or "*"`
		case port == "*":
			p.anyPort = true
		default:
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 || port[0] < '0' || port[0] > '9' {
				return HostPattern{}, fmt.Sprintf("invalid port %q; use a number from 1 to 65535 or \"*\"", port)
			}
			p.port = n
		}
	}
	return p, ""
}

// checkHostname validates a DNS name loosely enough for real-world names
// (underscores appear in service records) but tightly enough to reject
// typos like "api..example.com" or "999.1.1.1".
func checkHostname(h string) string {
	h = strings.TrimSuffix(h, ".")
	bad := func(why string) string { return fmt.Sprintf("invalid host name %q: %s", h, why) }
	if h == "" {
		return bad("empty")
	}
	if len(h) > 253 {
		return bad("longer than 253 characters")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" {
			return bad("empty label")
		}
		if len(l) > 63 {
			return bad("label longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("labels must not start or end with '-'")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return bad(fmt.Sprintf("character %q is not allowed", c))
			}
		}
	}
	// An all-numeric last label would be read as an IPv4 address by URL
	// parsers, so a name like that is an invalid IP, not a host name.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Sprintf("%q is not a valid IP address", h)
	}
	return ""
}

// String returns the pattern as written.
func (p HostPattern) String() string { return p.raw }

// MarshalText makes a HostPattern serialise (to JSON too) as its original
// string.
func (p HostPattern) MarshalText() ([]byte, error) { return []byte(p.raw), nil }

// UnmarshalText parses a pattern, so normalized manifests can be read back.
func (p *HostPattern) UnmarshalText(b []byte) error {
	q, err := ParseHostPattern(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

var errNoPort = errors.New("no port")

func defaultPort(scheme string) int {
	switch scheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}

// Allows reports whether an outbound request to u is permitted by p.
// Scheme and host compare case-insensitively; the effective port is the
// explicit port or the scheme's default. Only http and https URLs can be
// allowed, because those are the only protocols guests can speak outbound.
func (p HostPattern) Allows(u *url.URL) bool {
	if u == nil || p.scheme == "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return false
	}
	if p.scheme != "*" && p.scheme != scheme {
		return false
	}
	port, err := effectivePort(u, scheme)
	if err != nil {
		return false
	}
	switch {
	case p.anyPort:
	case p.port != 0:
		if port != p.port {
			return false
		}
	case p.scheme == "*":
		if port != 80 && port != 443 {
			return false
		}
	default:
		if port != defaultPort(p.scheme) {
			return false
		}
	}
	return p.allowsHost(u.Hostname())
}

func effectivePort(u *url.URL, scheme string) (int, error) {
	ps := u.Port()
	if ps == "" {
		return defaultPort(scheme), nil
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n < 1 || n > 65535 {
		return 0, errNoPort
	}
	return n, nil
}

func (p HostPattern) allowsHost(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" {
		return false
	}
	if p.host == "*" {
		return true
	}
	if p.ip.IsValid() {
		// Compare addresses, not text, so "[::1]" and "[0:0::1]" agree and an
		// IPv4-mapped IPv6 address counts as the IPv4 address it maps to.
		a, err := netip.ParseAddr(h)
		return err == nil && a.Zone() == "" && a.Unmap() == p.ip.Unmap()
	}
	if p.wild {
		return len(h) > len(p.host)+1 && strings.HasSuffix(h, "."+p.host)
	}
	return h == p.host
}

// OutboundAllowed reports whether any allowed_outbound_hosts pattern permits
// a request to u. With no patterns nothing is allowed (deny by default).
func (c Capabilities) OutboundAllowed(u *url.URL) bool {
	for _, p := range c.AllowedOutboundHosts {
		if p.Allows(u) {
			return true
		}
	}
	return false
}
