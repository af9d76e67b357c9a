package gateway

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// headersTarget answers 200 with the given header fields, as a guest would send them.
type headersTarget struct {
	fixedTarget
	header sandbox.Header
}

func (t *headersTarget) Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error) {
	resp := req.Reply
	*resp = sandbox.Response{Status: 200, Header: t.header, Body: fixedBody, End: time.Now()}
	return resp, nil
}

// TestResponseHeaderCopy: the guest's fields reach the response map canonically, a name
// repeated in any spelling keeps every value in order (among few names and many, and
// for Set-Cookie beside a split's sticky cookie), and the gateway's own fields are
// neither replaced nor repeated.
func TestResponseHeaderCopy(t *testing.T) {
	spec := sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}
	var many sandbox.Header
	var wantMany []string
	for i := range 12 {
		name := "X-F" + strings.Repeat("x", i)
		many = append(many, sandbox.Header{{Name: name, Value: "1"}}...)
		wantMany = append(wantMany, name)
	}
	many = append(many, sandbox.Header{{Name: "x-f", Value: "2"}, {Name: "X-Fxxxxxxxxxx", Value: "2"}}...)
	tests := []struct {
		name   string
		header sandbox.Header
		split  bool
		preset http.Header // set by a handler in front of the gateway
		want   http.Header // the guest's fields in the response, besides the gateway's
	}{
		{name: "one field", header: sandbox.Header{{Name: "Content-Type", Value: "text/plain"}},
			want: http.Header{"Content-Type": {"text/plain"}}},
		{name: "repeated in two spellings", header: sandbox.Header{{Name: "x-multi", Value: "a"}, {Name: "X-Other", Value: "o"}, {Name: "X-MULTI", Value: "b"}},
			want: http.Header{"X-Multi": {"a", "b"}, "X-Other": {"o"}}},
		{name: "the gateway's fields are kept", header: sandbox.Header{{Name: "x-request-id", Value: "spoof"}, {Name: "Traceparent", Value: "spoof"}, {Name: "content-length", Value: "1"}},
			want: http.Header{}},
		{name: "guest's Date, the first only", header: sandbox.Header{{Name: "date", Value: "d1"}, {Name: "Date", Value: "d2"}},
			want: http.Header{"Date": {"d1"}}},
		{name: "guest's cookies beside the split's", split: true, header: sandbox.Header{{Name: "set-cookie", Value: "a=1"}, {Name: "Set-Cookie", Value: "b=2"}},
			want: http.Header{"Set-Cookie": {"SPLIT", "a=1", "b=2"}}},
		{name: "a field set in front of the gateway is added to", preset: http.Header{"X-Front": {"f"}, "Vary": {"Origin"}},
			header: sandbox.Header{{Name: "vary", Value: "Accept"}, {Name: "X-Other", Value: "o"}},
			want:   http.Header{"X-Front": {"f"}, "Vary": {"Origin", "Accept"}, "X-Other": {"o"}}},
		{name: "a fifth name repeats the fourth", header: sandbox.Header{{Name: "A", Value: "1"}, {Name: "B", Value: "1"}, {Name: "C", Value: "1"}, {Name: "D", Value: "1"}, {Name: "E", Value: "1"}, {Name: "d", Value: "2"}, {Name: "a", Value: "2"}},
			want: http.Header{"A": {"1", "2"}, "B": {"1"}, "C": {"1"}, "D": {"1", "2"}, "E": {"1"}}},
		{name: "many names", header: many, want: func() http.Header {
			h := http.Header{}
			for _, n := range wantMany {
				h[http.CanonicalHeaderKey(n)] = []string{"1"}
			}
			h["X-F"] = []string{"1", "2"}
			h["X-Fxxxxxxxxxx"] = []string{"1", "2"}
			return h
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New(Config{})
			route := Route{Prefix: "/hello", Target: &headersTarget{fixedTarget: fixedTarget{spec: spec}, header: tt.header}}
			if tt.split {
				route.Split = &Split{Target: &headersTarget{fixedTarget: fixedTarget{spec: spec}, header: tt.header}, Weight: MaxWeight / 2, Sticky: "cookie:side"}
			}
			if err := g.SetRoutes([]Route{route}); err != nil {
				t.Fatal(err)
			}
			for _, r := range []*http.Request{ownServerRequest(t, 1), httpRequest(t)} {
				w := new(fermiontest.ServerWriter)
				for k, v := range tt.preset {
					w.Header()[k] = slices.Clone(v)
				}
				g.ServeHTTP(w, r)
				got := w.Header().Clone()
				for _, k := range []string{"X-Request-Id", "Traceparent"} {
					if v := got[k]; len(v) != 1 || strings.Contains(v[0], "spoof") {
						t.Errorf("%s = %q, want the gateway's one value", k, v)
					}
					delete(got, k)
				}
				if _, ok := tt.want["Date"]; !ok {
					if v := got["Date"]; len(v) != 1 {
						t.Errorf("Date = %q, want the gateway's one value", v)
					}
					delete(got, "Date")
				}
				delete(got, "Content-Length") // the gateway's, for a request not of its server
				if c := got["Set-Cookie"]; tt.split && len(c) > 0 && strings.HasPrefix(c[0], "side=") {
					c[0] = "SPLIT"
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("response fields %v, want %v", got, tt.want)
				}
				w.Finish()
			}
		})
	}
}

// httpRequest is a GET /hello built outside the gateway's own server.
func httpRequest(t testing.TB) *http.Request {
	r, err := http.NewRequest("GET", "http://test/hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// BenchmarkResponseHeaderCopy is ServeHTTP (telemetry off) for guests sending one and
// four fields, into a header map cleared between requests and no server's copying or
// writing: what is left is the gateway's own work, its map writes and lookups among it
// (bench/RESULTS.md, "Gateway trims (gwtrim)").
func BenchmarkResponseHeaderCopy(b *testing.B) {
	spec := sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}
	for _, tc := range []struct {
		name   string
		header sandbox.Header
	}{
		{"1field", fixedHeader},
		{"4fields", sandbox.Header{{Name: "Content-Type", Value: "text/plain"}, {Name: "Cache-Control", Value: "no-store"}, {Name: "X-Served-By", Value: "hello"}, {Name: "Vary", Value: "Accept"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := New(Config{})
			if err := g.SetRoutes([]Route{{Prefix: "/hello", Target: &headersTarget{fixedTarget: fixedTarget{spec: spec}, header: tc.header}}}); err != nil {
				b.Fatal(err)
			}
			r := ownServerRequest(b, 1)
			w := &headerWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				g.ServeHTTP(w, r)
			}
		})
	}
}

// FuzzResponseHeaderCopy: whatever fields a guest sends (names in any spelling,
// repeated or not, before and after the fourth), the response map is what a plain
// copy makes: net/http's canonical names, every value of a name in order, none of the
// gateway's reserved fields, the first Date only, beside a split's cookie and the
// fields a handler in front set. The input is "name:value" lines; a first byte of 'p'
// presets fields, 's' adds a split's cookie.
func FuzzResponseHeaderCopy(f *testing.F) {
	for _, s := range []string{
		"xContent-Type:text/plain",
		"xa:1\nb:2\nA:3",
		"pvary:Accept\nX-Front:g",
		"sset-cookie:a=1\nSet-Cookie:b=2",
		"xA:1\nB:1\nC:1\nD:1\nE:1\nd:2\ne:2\na:2",
		"xdate:d1\nDate:d2\nx-request-id:spoof\ncontent-length:9",
	} {
		f.Add(s)
	}
	spec := sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}
	cookie := &http.Cookie{Name: "side", Value: "v"}
	f.Fuzz(func(t *testing.T, in string) {
		if in == "" {
			return
		}
		mode, lines := in[0], strings.Split(in[1:], "\n")
		var header sandbox.Header
		for _, l := range lines {
			name, value, ok := strings.Cut(l, ":")
			if !ok || name == "" || len(header) == 16 {
				continue
			}
			header = append(header, sandbox.Header{{Name: name, Value: value}}...)
		}
		g := New(Config{})
		target := &headersTarget{fixedTarget: fixedTarget{spec: spec}, header: header}
		route := Route{Prefix: "/hello", Target: target}
		if mode == 's' {
			// Every request gets the canary's sticky cookie: weight all, no cookie sent.
			route.Split = &Split{Target: target, Weight: MaxWeight, Sticky: "cookie:" + cookie.Name}
		}
		if err := g.SetRoutes([]Route{route}); err != nil {
			t.Fatal(err)
		}
		want := http.Header{}
		w := &headerWriter{h: http.Header{}}
		if mode == 'p' {
			w.h["Vary"] = []string{"Origin"}
			w.h["X-Front"] = []string{"f"}
			want["Vary"] = []string{"Origin"}
			want["X-Front"] = []string{"f"}
		}
		g.ServeHTTP(w, ownServerRequest(t, 1))
		got := w.h
		if mode == 's' {
			c := got["Set-Cookie"]
			if len(c) == 0 || !strings.HasPrefix(c[0], cookie.Name+"=") {
				t.Fatalf("Set-Cookie %q, want the split's first", c)
			}
			want["Set-Cookie"] = []string{c[0]}
		}
		dated := false
		for _, kv := range header {
			k := http.CanonicalHeaderKey(kv.Name)
			if reservedResponseHeader(k) || (k == "Date" && dated) {
				continue
			}
			dated = dated || k == "Date"
			want[k] = append(want[k], kv.Value)
		}
		for _, k := range []string{"X-Request-Id", "Traceparent"} {
			if len(got[k]) != 1 {
				t.Fatalf("%s %q, want the gateway's one value", k, got[k])
			}
			delete(got, k)
		}
		if !dated {
			if len(got["Date"]) != 1 {
				t.Fatalf("Date %q, want the gateway's one value", got["Date"])
			}
			delete(got, "Date")
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("guest fields %q: response map %v, want %v", header, got, want)
		}
	})
}
