package manifest

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", s, err)
	}
	return u
}

func TestHostPatternAllows(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		url     string
		want    bool
	}{
		{"exact", "https://api.example.com", "https://api.example.com/v1/x?q=1", true},
		{"exact other host", "https://api.example.com", "https://www.example.com/", false},
		{"exact suffix trick", "https://example.com", "https://evilexample.com/", false},
		{"exact scheme mismatch", "https://api.example.com", "http://api.example.com/", false},
		{"exact explicit default port", "https://api.example.com", "https://api.example.com:443/", true},
		{"exact non-default port", "https://api.example.com", "https://api.example.com:8443/", false},
		{"http default port", "http://api.example.com", "http://api.example.com:80/", true},
		{"http on 443 denied", "http://api.example.com", "http://api.example.com:443/", false},
		{"explicit port", "https://api.example.com:8443", "https://api.example.com:8443/", true},
		{"explicit port vs default", "https://api.example.com:8443", "https://api.example.com/", false},
		{"port wildcard", "http://127.0.0.1:*", "http://127.0.0.1:5000/", true},
		{"port wildcard default port", "http://127.0.0.1:*", "http://127.0.0.1/", true},
		{"port wildcard other ip", "http://127.0.0.1:*", "http://127.0.0.2:5000/", false},
		{"wildcard subdomain", "https://*.example.org:8443", "https://a.example.org:8443/", true},
		{"wildcard nested subdomain", "https://*.example.org", "https://a.b.example.org/", true},
		{"wildcard excludes apex", "https://*.example.org", "https://example.org/", false},
		{"wildcard suffix trick", "https://*.example.org", "https://badexample.org/", false},
		{"wildcard wrong port", "https://*.example.org:8443", "https://a.example.org/", false},
		{"any host", "https://*", "https://anything.test/", true},
		{"any host any port", "*://*:*", "http://anything.test:1234/", true},
		{"scheme wildcard http", "*://api.example.com", "http://api.example.com/", true},
		{"scheme wildcard https", "*://api.example.com", "https://api.example.com/", true},
		{"scheme wildcard both default ports", "*://api.example.com", "http://api.example.com:443/", true},
		{"scheme wildcard other port", "*://api.example.com", "https://api.example.com:8080/", false},
		{"scheme wildcard non-http scheme", "*://api.example.com:*", "ftp://api.example.com/", false},
		{"case-insensitive host", "https://API.Example.COM", "https://api.EXAMPLE.com/", true},
		{"case-insensitive scheme", "HTTPS://api.example.com", "HtTpS://api.example.com/", true},
		{"trailing dot", "https://api.example.com", "https://api.example.com./", true},
		{"ipv6", "http://[::1]:8080", "http://[::1]:8080/", true},
		{"ipv6 non-canonical", "http://[0:0::1]:8080", "http://[::1]:8080/", true},
		{"ipv6 wrong port", "http://[::1]:8080", "http://[::1]:8081/", false},
		{"ipv6 default port", "https://[2001:db8::1]", "https://[2001:db8::1]/", true},
		{"ipv6 vs ipv4", "http://[::1]", "http://127.0.0.1/", false},
		{"ipv4-mapped ipv6", "http://127.0.0.1", "http://[::ffff:127.0.0.1]/", true},
		{"ipv6 zone denied", "http://[fe80::1]", "http://[fe80::1%25eth0]/", false},
		{"ip pattern vs name", "http://127.0.0.1", "http://localhost/", false},
		{"userinfo in url ignored", "https://api.example.com", "https://user:pw@api.example.com/", true},
		{"empty host denied", "https://*", "https:///path", false},
		{"bad url port denied", "http://h:*", "http://h:99999/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseHostPattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Allows(mustURL(t, tt.url)); got != tt.want {
				t.Errorf("%q.Allows(%q) = %v, want %v", tt.pattern, tt.url, got, tt.want)
			}
		})
	}
}

func TestHostPatternZeroAndNil(t *testing.T) {
	var p HostPattern
	if p.Allows(mustURL(t, "https://example.com")) {
		t.Error("zero HostPattern must allow nothing")
	}
	q, _ := ParseHostPattern("https://*")
	if q.Allows(nil) {
		t.Error("nil URL must be denied")
	}
}

func TestParseHostPatternErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "must not be empty"},
		{"no scheme", "example.com", `missing scheme; write it as "https://example.com"`},
		{"bad scheme", "ws://example.com", `unsupported scheme "ws"`},
		{"path", "https://example.com/api", `remove the path "/api"`},
		{"trailing slash", "https://example.com/", `remove the path "/"`},
		{"query", "https://example.com?x=1", `remove the query "?x=1"`},
		{"fragment", "https://example.com#x", `remove the fragment "#x"`},
		{"userinfo", "https://u@example.com", `remove the user info "u@"`},
		{"port zero", "https://example.com:0", `invalid port "0"`},
		{"port too big", "https://example.com:65536", `invalid port "65536"`},
		{"port sign", "https://example.com:+80", `invalid port "+80"`},
		{"port empty", "https://example.com:", "empty port"},
		{"port range", "https://example.com:80-90", `invalid port "80-90"`},
		{"no host", "https://:80", "missing host"},
		{"bare ipv6", "http://::1", "IPv6 addresses must be in brackets"},
		{"bad ipv6", "http://[not-ip]:80", `"not-ip" is not an IPv6 address`},
		{"ipv4 in brackets", "http://[127.0.0.1]", "is not an IPv6 address"},
		{"unclosed bracket", "http://[::1", `unclosed "["`},
		{"junk after bracket", "http://[::1]x", `unexpected "x"`},
		{"mid wildcard", "https://api.*.com", "wildcard"},
		{"partial wildcard", "https://*api.com", "wildcard"},
		{"bad label", "https://a..b", "empty label"},
		{"underscore ok but bang not", "https://a!b.com", "not allowed"},
		{"bad ipv4", "http://999.1.1.1", "not a valid IP address"},
		{"space", "https://a b.com", "spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHostPattern(tt.in)
			if err == nil {
				t.Fatalf("ParseHostPattern(%q) succeeded, want error containing %q", tt.in, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "parse host pattern ") {
				t.Errorf("ParseHostPattern(%q) = %v, want error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestHostPatternJSON(t *testing.T) {
	in := []string{"HTTPS://API.example.com", "http://[::1]:*", "*://*.example.org"}
	var ps []HostPattern
	for _, s := range in {
		p, err := ParseHostPattern(s)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	b, err := json.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	if want := `["HTTPS://API.example.com","http://[::1]:*","*://*.example.org"]`; string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	var back []HostPattern
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for i := range ps {
		if back[i] != ps[i] {
			t.Errorf("round trip %d: %+v != %+v", i, back[i], ps[i])
		}
	}
	if err := json.Unmarshal([]byte(`["ftp://x"]`), &back); err == nil {
		t.Error("unmarshal of an invalid pattern must fail")
	}
}

func TestOutboundAllowed(t *testing.T) {
	var c Capabilities
	for _, s := range []string{"https://api.example.com", "http://localhost:*"} {
		p, err := ParseHostPattern(s)
		if err != nil {
			t.Fatal(err)
		}
		c.AllowedOutboundHosts = append(c.AllowedOutboundHosts, p)
	}
	tests := []struct {
		url  string
		want bool
	}{
		{"https://api.example.com/x", true},
		{"http://localhost:3000/", true},
		{"http://api.example.com/", false},
		{"https://other.example.com/", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			if got := c.OutboundAllowed(mustURL(t, tt.url)); got != tt.want {
				t.Errorf("OutboundAllowed(%q) = %v, want %v", tt.url, got, tt.want)
			}
		})
	}
}
