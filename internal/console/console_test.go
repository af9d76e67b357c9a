package console

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newTestHandler(t *testing.T) http.Handler {
	t.Helper()
	h, err := New(Config{TraceUIURL: "http://jaeger:16686/trace/{trace_id}", Version: "v9", Features: map[string]bool{"rollout": true},
		Identify: func(tok string) (string, string, bool) {
			if tok == "fmn_good" {
				return "tok1", "viewer", true
			}
			return "", "", false
		}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHandler(t *testing.T) {
	h := newTestHandler(t)
	for _, tc := range []struct {
		name, method, path, auth, gzip string
		status                         int
		ctype, contains, location      string
	}{
		{name: "root redirects", path: "/", status: http.StatusFound, location: "/ui/"},
		{name: "index", path: "/ui/", status: 200, ctype: "text/html", contains: `src="/ui/app.js"`},
		{name: "module", path: "/ui/app.js", status: 200, ctype: "text/javascript", contains: "sessionStorage"},
		{name: "stylesheet", path: "/ui/style.css", status: 200, ctype: "text/css"},
		{name: "gzip when accepted", path: "/ui/app.js", gzip: "gzip, deflate", status: 200, ctype: "text/javascript", contains: "sessionStorage"},
		{name: "config", path: "/ui/config.json", status: 200, contains: `"traceUrl":"http://jaeger:16686/trace/{trace_id}"`},
		{name: "features", path: "/ui/config.json", status: 200, contains: `"features":{"rollout":true}`},
		{name: "unknown file", path: "/ui/nope.js", status: 404, contains: "no console file nope.js"},
		{name: "outside ui", path: "/metrics", status: 404, contains: "the API at /v1/"},
		{name: "post refused", method: "POST", path: "/ui/", status: http.StatusMethodNotAllowed, contains: "/v1 API"},
		{name: "session without token", path: "/ui/session", status: 401, contains: "Authorization: Bearer"},
		{name: "session with a bad token", path: "/ui/session", auth: "Bearer fmn_bad", status: 401, contains: "unknown, revoked or expired"},
		{name: "session", path: "/ui/session", auth: "Bearer fmn_good", status: 200, contains: `"role":"viewer"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			r := httptest.NewRequest(method, tc.path, nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.gzip != "" {
				r.Header.Set("Accept-Encoding", tc.gzip)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.location != "" && w.Header().Get("Location") != tc.location {
				t.Errorf("location %q", w.Header().Get("Location"))
			}
			if !strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("no content security policy: %q", w.Header().Get("Content-Security-Policy"))
			}
			if tc.ctype != "" && !strings.HasPrefix(w.Header().Get("Content-Type"), tc.ctype) {
				t.Errorf("content type %q, want %s", w.Header().Get("Content-Type"), tc.ctype)
			}
			body := w.Body.String()
			if w.Header().Get("Content-Encoding") == "gzip" {
				if tc.gzip == "" {
					t.Fatal("gzip sent to a client that did not ask for it")
				}
				zr, err := gzip.NewReader(w.Body)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(zr)
				body = string(b)
			} else if tc.gzip != "" {
				t.Error("no gzip for a client that accepts it")
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body does not contain %q:\n%.300s", tc.contains, body)
			}
		})
	}
}

func TestETagRevalidation(t *testing.T) {
	h := newTestHandler(t)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/ui/app.js", nil))
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	r := httptest.NewRequest("GET", "/ui/app.js", nil)
	r.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("revalidation: %d with %d bytes, want 304 and none", w.Code, w.Body.Len())
	}
}

// TestAssetBudget keeps what a first visit downloads (gzip, as browsers ask) within
// the console's 300 KB budget; the browser test measures the same on the wire.
func TestAssetBudget(t *testing.T) {
	h := newTestHandler(t).(*handler)
	total := 0
	for name, a := range h.assets {
		n := len(a.body)
		if a.gz != nil {
			n = len(a.gz)
		}
		t.Logf("%s: %d bytes (%d raw)", name, n, len(a.body))
		total += n
	}
	if total > 300<<10 {
		t.Fatalf("assets are %d bytes gzipped, over the 300 KB budget", total)
	}
}

func TestValidateTraceUIURL(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"", ""},
		{"http://jaeger:16686/trace/{trace_id}", ""},
		{"https://tempo.example/explore?trace={trace_id}", ""},
		{"http://jaeger:16686/trace/", "has no {trace_id}"},
		{"jaeger:16686/trace/{trace_id}", "not an absolute http(s) URL"},
		{"/trace/{trace_id}", "not an absolute http(s) URL"},
		{"javascript:alert({trace_id})", "not an absolute http(s) URL"},
		{"http://[::1/{trace_id}", "want an http(s) URL"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			err := ValidateTraceUIURL(tc.in)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one saying %q", err, tc.err)
			}
		})
	}
	if _, err := New(Config{TraceUIURL: "nope", Identify: func(string) (string, string, bool) { return "", "", false }}); err == nil {
		t.Error("New accepted a bad trace UI URL")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a config without Identify")
	}
}

func FuzzValidateTraceUIURL(f *testing.F) {
	for _, s := range []string{"", "http://jaeger:16686/trace/{trace_id}", "x{trace_id}", "https://h/{trace_id}?a=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateTraceUIURL(s) != nil || s == "" {
			return
		}
		// Accepted: the page links to it, so it must stay an http(s) URL.
		if l := strings.ToLower(s); !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "https://") {
			t.Fatalf("accepted %q", s)
		}
	})
}
