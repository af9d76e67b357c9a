package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/sandbox"
)

// fakeTarget stands in for a function in pure routing tests; it is never invoked.
type fakeTarget struct{ name string }

func (f *fakeTarget) Name() string       { return f.name }
func (f *fakeTarget) Version() string    { return "1.0.0" }
func (f *fakeTarget) Spec() sandbox.Spec { return sandbox.Spec{Name: f.name, Version: "1.0.0"} }
func (f *fakeTarget) Invoke(context.Context, *sandbox.Request) (*sandbox.Response, error) {
	panic("routing tests never invoke a target")
}

func mustTable(t *testing.T, routes []Route) *table {
	t.Helper()
	tb, err := newTable(routes)
	if err != nil {
		t.Fatalf("newTable: %v", err)
	}
	return tb
}

func TestTableMatch(t *testing.T) {
	target := func(name string) Target { return &fakeTarget{name: name} }
	routes := []Route{
		{Host: "", Prefix: "/", Target: target("any-root")},
		{Host: "", Prefix: "/hello", Target: target("any-hello")},
		{Host: "", Prefix: "/hello/deep", Target: target("any-hello-deep")},
		{Host: "", Prefix: "/docs/", Target: target("any-docs-slash")},
		{Host: "api.example.com", Prefix: "/hello", Target: target("exact-hello")},
		{Host: "API.Example.com", Prefix: "/v1", Target: target("exact-v1")},
		{Host: "*.example.com", Prefix: "/hello", Target: target("wild-hello")},
		{Host: "*.example.com", Prefix: "/wild", Target: target("wild-wild")},
		{Host: "*.eu.example.com", Prefix: "/hello", Target: target("wild-eu-hello")},
		{Host: "only.example.org", Prefix: "/only", Target: target("exact-only")},
		{Host: "fqdn.example.org.", Prefix: "/", Target: target("exact-fqdn")},
	}
	tb := mustTable(t, routes)

	tests := []struct {
		name       string
		host, path string
		want       string // "" means no match
	}{
		{name: "any host root", host: "localhost", path: "/", want: "any-root"},
		{name: "any host unknown path falls to root", host: "localhost", path: "/nothing", want: "any-root"},
		{name: "any host exact prefix", host: "localhost", path: "/hello", want: "any-hello"},
		{name: "segment below prefix", host: "localhost", path: "/hello/x", want: "any-hello"},
		{name: "no match inside a segment", host: "localhost", path: "/helloworld", want: "any-root"},
		{name: "longest prefix wins", host: "localhost", path: "/hello/deep/er", want: "any-hello-deep"},
		{name: "longest prefix exact", host: "localhost", path: "/hello/deep", want: "any-hello-deep"},
		{name: "longest prefix segment boundary", host: "localhost", path: "/hello/deeper", want: "any-hello"},
		{name: "trailing slash prefix matches below", host: "localhost", path: "/docs/a/b", want: "any-docs-slash"},
		{name: "trailing slash prefix matches itself", host: "localhost", path: "/docs/", want: "any-docs-slash"},
		{name: "trailing slash prefix does not match without slash", host: "localhost", path: "/docs", want: "any-root"},
		{name: "trailing slash prefix does not match sibling", host: "localhost", path: "/docsx", want: "any-root"},
		{name: "exact host beats wildcard and any", host: "api.example.com", path: "/hello", want: "exact-hello"},
		{name: "exact host with port", host: "api.example.com:8080", path: "/hello/x", want: "exact-hello"},
		{name: "exact host case-insensitive", host: "Api.EXAMPLE.com", path: "/hello", want: "exact-hello"},
		{name: "route host case-insensitive", host: "api.example.com", path: "/v1/users", want: "exact-v1"},
		{name: "exact host fully qualified with dot", host: "api.example.com.", path: "/hello", want: "exact-hello"},
		{name: "exact host without matching prefix falls to wildcard", host: "api.example.com", path: "/wild", want: "wild-wild"},
		{name: "exact host without any matching prefix falls to any host", host: "api.example.com", path: "/docs/x", want: "any-docs-slash"},
		{name: "wildcard matches subdomain", host: "www.example.com", path: "/hello", want: "wild-hello"},
		{name: "wildcard matches deeper subdomain", host: "a.b.example.com", path: "/hello", want: "wild-hello"},
		{name: "wildcard case-insensitive with port", host: "WWW.Example.Com:443", path: "/wild/x", want: "wild-wild"},
		{name: "longest wildcard suffix wins", host: "paris.eu.example.com", path: "/hello", want: "wild-eu-hello"},
		{name: "longer wildcard without prefix falls to shorter wildcard", host: "paris.eu.example.com", path: "/wild", want: "wild-wild"},
		{name: "wildcard does not match the apex", host: "example.com", path: "/hello", want: "any-hello"},
		{name: "wildcard does not match a lookalike", host: "badexample.com", path: "/wild", want: "any-root"},
		{name: "route host with trailing dot", host: "fqdn.example.org", path: "/x", want: "exact-fqdn"},
		{name: "route host with trailing dot, request fully qualified", host: "FQDN.example.org.:80", path: "/x", want: "exact-fqdn"},
		{name: "path is case-sensitive", host: "localhost", path: "/HELLO", want: "any-root"},
		{name: "ipv6 host with port", host: "[::1]:8080", path: "/hello", want: "any-hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := tb.match(tt.host, tt.path)
			got := ""
			if ok {
				got = r.Target.Name()
			}
			if got != tt.want {
				t.Fatalf("match(%q, %q) = %q, want %q", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

func TestTableMatchWithoutCatchAll(t *testing.T) {
	tb := mustTable(t, []Route{
		{Host: "only.example.org", Prefix: "/only", Target: &fakeTarget{name: "only"}},
		{Host: "*.example.net", Prefix: "/", Target: &fakeTarget{name: "net"}},
	})
	tests := []struct {
		name, host, path, want string
	}{
		{name: "exact host and prefix", host: "only.example.org", path: "/only", want: "only"},
		{name: "exact host other path", host: "only.example.org", path: "/other", want: ""},
		{name: "other host", host: "other.example.org", path: "/only", want: ""},
		{name: "wildcard root", host: "x.example.net", path: "/anything", want: "net"},
		{name: "wildcard apex", host: "example.net", path: "/anything", want: ""},
		{name: "empty host", host: "", path: "/only", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := tb.match(tt.host, tt.path)
			got := ""
			if ok {
				got = r.Target.Name()
			}
			if got != tt.want {
				t.Fatalf("match(%q, %q) = %q, want %q", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

func TestNewTableErrors(t *testing.T) {
	a, b := &fakeTarget{name: "a"}, &fakeTarget{name: "b"}
	tests := []struct {
		name    string
		routes  []Route
		wantErr string // "" means no error
	}{
		{name: "empty table", routes: nil},
		{name: "same prefix on different hosts", routes: []Route{
			{Prefix: "/x", Target: a}, {Host: "a.example.com", Prefix: "/x", Target: b}, {Host: "*.example.com", Prefix: "/x", Target: b},
		}},
		{name: "duplicate any-host route", routes: []Route{
			{Prefix: "/x", Target: a}, {Prefix: "/x", Target: b},
		}, wantErr: "claimed twice"},
		{name: "duplicate host route differing in case", routes: []Route{
			{Host: "A.example.com", Prefix: "/x", Target: a}, {Host: "a.EXAMPLE.com", Prefix: "/x", Target: b},
		}, wantErr: "claimed twice"},
		{name: "duplicate wildcard route", routes: []Route{
			{Host: "*.example.com", Prefix: "/", Target: a}, {Host: "*.Example.com", Prefix: "/", Target: b},
		}, wantErr: "claimed twice"},
		{name: "empty host and star are the same any-host route", routes: []Route{
			{Host: "", Prefix: "/x", Target: a}, {Host: "*", Prefix: "/x", Target: b},
		}, wantErr: "claimed twice"},
		{name: "prefix without slash", routes: []Route{{Prefix: "x", Target: a}}, wantErr: "must start with /"},
		{name: "no target", routes: []Route{{Prefix: "/x"}}, wantErr: "no target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTable(tt.routes)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("newTable: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("newTable succeeded, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("newTable error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestSetRoutesKeepsTableOnError(t *testing.T) {
	g := New(Config{})
	a := &fakeTarget{name: "a"}
	if err := g.SetRoutes([]Route{{Prefix: "/a", Target: a}}); err != nil {
		t.Fatal(err)
	}
	err := g.SetRoutes([]Route{{Prefix: "/b", Target: a}, {Prefix: "/b", Target: a}})
	if err == nil {
		t.Fatal("SetRoutes accepted a duplicate route")
	}
	routes := g.Routes()
	if len(routes) != 1 || routes[0].Prefix != "/a" {
		t.Fatalf("routes after a failed SetRoutes = %+v, want the previous table", routes)
	}
}

// TestRouteDrain: routes a new table stops serving drain until their deadline, which a
// later table keeps rather than extends; a route served again is live.
func TestRouteDrain(t *testing.T) {
	target := func(name string) Target { return &fakeTarget{name: name} }
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const period = 30 * time.Second
	first := mustTable(t, []Route{
		{Prefix: "/hello", Target: target("hello")},
		{Prefix: "/gone", Target: target("gone")},
		{Host: "A.example.com", Prefix: "/x", Target: target("x")},
		{Prefix: "/back", Target: target("back")},
	})
	second := mustTable(t, []Route{{Prefix: "/hello", Target: target("hello")}})
	second.carryDrains(first, t0, period)
	third := mustTable(t, []Route{{Prefix: "/back", Target: target("back2")}}) // /hello goes at t0+10s
	third.carryDrains(second, t0.Add(10*time.Second), period)

	tests := []struct {
		name       string
		tb         *table
		host, path string
		at         time.Duration // after t0
		want       string        // the draining route's prefix, "" none
		until      time.Duration
	}{
		{"stopped route drains", second, "h", "/gone", time.Second, "/gone", period},
		{"below its prefix", second, "h", "/gone/sub", time.Second, "/gone", period},
		{"not inside a segment", second, "h", "/goner", time.Second, "", 0},
		{"forgotten after the period", second, "h", "/gone", period, "", 0},
		{"live route is not draining", second, "h", "/hello", time.Second, "", 0},
		{"host route drains for its host", second, "a.example.com:8080", "/x", time.Second, "/x", period},
		{"host route, another host", second, "b.example.com", "/x", time.Second, "", 0},
		{"deadline kept by a later table", third, "h", "/gone", 29 * time.Second, "/gone", period},
		{"and not extended", third, "h", "/gone", period, "", 0},
		{"stopped later, drains from then", third, "h", "/hello", 35 * time.Second, "/hello", 40 * time.Second},
		{"served again: live", third, "h", "/back", time.Second, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, until, ok := tt.tb.drainingRoute(tt.host, tt.path, t0.Add(tt.at))
			got := ""
			if ok {
				got = r.Prefix
			}
			if got != tt.want {
				t.Fatalf("draining route = %q, want %q", got, tt.want)
			}
			if ok && !until.Equal(t0.Add(tt.until)) {
				t.Errorf("until = %s, want t0+%s", until, tt.until)
			}
		})
	}
	if _, ok := third.match("h", "/back"); !ok {
		t.Error("/back is not served by the table that routes it again")
	}

	t.Run("no period", func(t *testing.T) {
		tb := mustTable(t, nil)
		tb.carryDrains(first, t0, 0)
		if _, _, ok := tb.drainingRoute("h", "/gone", t0); ok {
			t.Fatal("a route drains with a zero period")
		}
	})
}
