package cli

import (
	"net/url"
	"strings"
	"testing"
)

func TestReachable(t *testing.T) {
	for _, tt := range []struct {
		name, addr, want string
		every            bool
	}{
		{"IPv6 wildcard, as a listener on :8081 reports it", "[::]:8081", "localhost:8081", true},
		{"IPv4 wildcard", "0.0.0.0:8081", "localhost:8081", true},
		{"no host", ":8081", "localhost:8081", true},
		{"IPv4-mapped wildcard", "[::ffff:0.0.0.0]:8081", "localhost:8081", true},
		{"loopback", "127.0.0.1:8081", "127.0.0.1:8081", false},
		{"IPv6 loopback", "[::1]:8081", "[::1]:8081", false},
		{"one interface", "192.0.2.7:8081", "192.0.2.7:8081", false},
		{"a name", "edge-1.example:8081", "edge-1.example:8081", false},
		{"no port: left alone", "0.0.0.0", "0.0.0.0", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, note := reachable(tt.addr)
			if got != tt.want || (note != "") != tt.every {
				t.Errorf("reachable(%q) = %q, %q; want %q, every interface %t", tt.addr, got, note, tt.want, tt.every)
			}
		})
	}
}

func TestReachableURL(t *testing.T) {
	for _, tt := range []struct {
		name, url, want string
		every           bool
	}{
		{"NATS on every interface", "nats://0.0.0.0:4222", "nats://localhost:4222", true},
		{"https on IPv6 wildcard", "https://[::]:7070", "https://localhost:7070", true},
		{"with user and path", "nats://u:p@[::]:4222/x", "nats://u:p@localhost:4222/x", true},
		{"a list, one wildcard", "nats://10.0.0.1:4222,nats://0.0.0.0:4223", "nats://10.0.0.1:4222,nats://localhost:4223", true},
		{"loopback", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222", false},
		{"not a URL", "::not a url", "::not a url", false},
		{"empty", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, note := reachableURL(tt.url)
			if got != tt.want || (note != "") != tt.every {
				t.Errorf("reachableURL(%q) = %q, %q; want %q, every interface %t", tt.url, got, note, tt.want, tt.every)
			}
		})
	}
}

// FuzzReachableURL: whatever --server lists, reachableURL does not panic, is idempotent,
// keeps the number of URLs, and leaves no URL with a wildcard host behind.
func FuzzReachableURL(f *testing.F) {
	for _, s := range []string{"nats://0.0.0.0:4222", "https://[::]:7070", "nats://a:1,nats://[::]:2", "", ",", "::", "nats://[::", "tls://u:p@0.0.0.0:1/x?y#z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, note := reachableURL(s)
		if again, _ := reachableURL(got); again != got {
			t.Fatalf("reachableURL(%q) = %q, and again %q", s, got, again)
		}
		if strings.Count(got, ",") != strings.Count(s, ",") {
			t.Fatalf("reachableURL(%q) = %q: the list changed length", s, got)
		}
		for _, u := range strings.Split(got, ",") {
			p, err := url.Parse(u)
			if err != nil || p.Host == "" {
				continue
			}
			if _, n := reachable(p.Host); n != "" {
				t.Fatalf("reachableURL(%q) = %q (%q): %q still has a wildcard host", s, got, note, u)
			}
		}
	})
}
