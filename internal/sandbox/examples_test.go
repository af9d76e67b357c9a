package sandbox_test

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// echoDoc is what the echo example answers.
type echoDoc struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body"`
}

func TestEchoRoundTrip(t *testing.T) {
	e, _ := newEngine(t)
	f := load(t, e, spec("echo", reactor(t, guestEcho)))

	letters := make([]byte, 512<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range letters {
		letters[i] = 'a' + byte(rng.IntN(26))
	}
	tests := []struct {
		name   string
		method string
		uri    string
		header http.Header
		added  sandbox.Header
		body   string
		want   echoDoc
	}{
		{
			name: "get with query", method: "GET", uri: "/echo/a%20b/c?x=1&y=two&x=3&amp=%26",
			header: http.Header{},
			want:   echoDoc{Method: "GET", Path: "/echo/a b/c", Query: "x=1&y=two&x=3&amp=%26", Headers: map[string][]string{}},
		},
		{
			name: "headers", method: "DELETE", uri: "/echo",
			header: http.Header{"X-Demo": {"yes"}, "X-Multi": {"a", "b"}, "Authorization": {"Bearer t0k3n"}, "X-Empty": {""}},
			want: echoDoc{Method: "DELETE", Path: "/echo",
				Headers: map[string][]string{"X-Demo": {"yes"}, "X-Multi": {"a", "b"}, "Authorization": {"Bearer t0k3n"}, "X-Empty": {""}}},
		},
		{
			// A map built by hand may spell names any way; the guest sees them canonical.
			name: "header spelling", method: "GET", uri: "/echo",
			header: http.Header{"x-lower-case": {"v"}, "content-TYPE": {"text/plain"}},
			want: echoDoc{Method: "GET", Path: "/echo",
				Headers: map[string][]string{"X-Lower-Case": {"v"}, "Content-Type": {"text/plain"}}},
		},
		{
			// The host's own fields replace the map's of the same names, however spelled.
			name: "added fields", method: "GET", uri: "/echo",
			header: http.Header{"X-Request-Id": {"old", "older"}, "x-forwarded-proto": {"http"}, "X-Demo": {"yes"}},
			added: sandbox.Header{{Name: "X-Request-Id", Value: "new"}, {Name: "Traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
				{Name: "X-Forwarded-Proto", Value: "https"}},
			want: echoDoc{Method: "GET", Path: "/echo", Headers: map[string][]string{"X-Request-Id": {"new"}, "X-Demo": {"yes"},
				"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "X-Forwarded-Proto": {"https"}}},
		},
		{
			name: "body with unicode", method: "PUT", uri: "/echo?k=v",
			header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			body:   "héllo, wörld ✓\nline two\r\n\ttab",
			want: echoDoc{Method: "PUT", Path: "/echo", Query: "k=v",
				Headers: map[string][]string{"Content-Type": {"text/plain; charset=utf-8"}}, Body: "héllo, wörld ✓\nline two\r\n\ttab"},
		},
		{
			name: "512 KiB body", method: "POST", uri: "/echo/big",
			header: http.Header{"Content-Type": {"application/octet-stream"}},
			body:   string(letters),
			want: echoDoc{Method: "POST", Path: "/echo/big",
				Headers: map[string][]string{"Content-Type": {"application/octet-stream"}}, Body: string(letters)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &sandbox.Request{ID: "t", Method: tt.method, URI: tt.uri, Host: "fn.example:8080",
				RemoteAddr: "192.0.2.1:5555", Header: tt.header, Added: tt.added, Body: []byte(tt.body)}
			resp := wantOK(t, f, req, "")
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content-type %q", ct)
			}
			var got echoDoc
			if err := json.Unmarshal(resp.Body, &got); err != nil {
				t.Fatalf("decode %q: %v", truncate(resp.Body), err)
			}
			tt.want.Host = "fn.example:8080"
			if !reflect.DeepEqual(got, tt.want) {
				if got.Body != tt.want.Body {
					t.Fatalf("body: got %d bytes %q, want %d bytes", len(got.Body), truncate([]byte(got.Body)), len(tt.want.Body))
				}
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	// Every request above reused one instance: the guest's buffers were reused across
	// very different request sizes without mixing them up.
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
}

func TestCGIRoundTrip(t *testing.T) {
	e, _ := newEngine(t)
	f := load(t, e, spec("cgi", command(t, guestCGI)))
	t.Setenv("HTTP_LEAKED", "from the host") // the host's environment must not reach the guest

	req := &sandbox.Request{ID: "t", Method: "POST", URI: "/cgi/sub/path?q=1&r=two", Host: "fn.example:8080",
		RemoteAddr: "192.0.2.1:5555", Route: "/cgi",
		Header: http.Header{"X-Demo": {"yes"}, "Content-Type": {"text/plain"}, "Proxy": {"http://evil"}},
		Body:   []byte("hello body")}
	resp := wantOK(t, f, req, "")
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
		t.Fatalf("content-type %q", ct)
	}
	body := string(resp.Body)
	for _, w := range []string{"method: POST\n", "path: /sub/path\n", "query: q=1&r=two\n", "body length: 10\n",
		"server: http://fn.example:8080\n", "header: HTTP_X_DEMO=yes\n", "upper: HELLO BODY\n"} {
		if !strings.Contains(body, w) {
			t.Fatalf("body %q does not contain %q", body, w)
		}
	}
	// Over HTTPS, a Host without a port means 443.
	req.TLS, req.Host = true, "fn.example"
	if body := string(wantOK(t, f, req, "").Body); !strings.Contains(body, "server: https://fn.example:443\n") {
		t.Fatalf("body %q over https", body)
	}
	for _, bad := range []string{"HTTP_LEAKED", "HTTP_PROXY", "HTTP_CONTENT_TYPE"} {
		if strings.Contains(body, bad) {
			t.Fatalf("body %q contains %s", body, bad)
		}
	}
	// The host's own fields replace the map's of the same names, however spelled.
	req.Header = http.Header{"X-Demo": {"yes"}, "x-request-id": {"old"}}
	req.Added = sandbox.Header{{Name: "X-Request-Id", Value: "new"}, {Name: "Traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	body = string(wantOK(t, f, req, "").Body)
	for _, w := range []string{"header: HTTP_X_DEMO=yes\n", "header: HTTP_X_REQUEST_ID=new\n",
		"header: HTTP_TRACEPARENT=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n"} {
		if !strings.Contains(body, w) {
			t.Fatalf("body %q does not contain %q", body, w)
		}
	}
	if strings.Contains(body, "old") {
		t.Fatalf("body %q shows the replaced request id", body)
	}
	if st := f.Stats(); st != (sandbox.Stats{}) {
		t.Fatalf("command module stats %+v", st)
	}
}

func TestEnrich(t *testing.T) {
	wasm := reactor(t, guestEnrich)
	var lookups atomic.Int32
	var lastID atomic.Value
	lookup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lookups.Add(1)
		lastID.Store(r.URL.Query().Get("id"))
		if r.URL.Path != "/customers" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"Ada","tier":"gold","since":2019}`))
	}))
	t.Cleanup(lookup.Close)
	anyLocalPort, err := manifest.ParseHostPattern("http://127.0.0.1:*")
	if err != nil {
		t.Fatal(err)
	}

	// Variables set in the test process: none may reach a guest that was not granted them.
	t.Setenv("FERMION_REGION", "leaked-region")
	t.Setenv("FERMION_NODE", "leaked-node")
	t.Setenv("ENRICH_LOOKUP_URL", lookup.URL+"/customers")

	tests := []struct {
		name        string
		env         map[string]string
		wantRegion  string
		wantNode    string
		wantLookups int32
		wantName    string // customer.name, "" for a null customer
		noHosts     bool   // grant no outbound hosts
		wantError   string // in enrich_error
	}{
		{
			name:       "granted env and host",
			env:        map[string]string{"FERMION_REGION": "eu-test", "FERMION_NODE": "n1", "ENRICH_LOOKUP_URL": lookup.URL + "/customers"},
			wantRegion: "eu-test", wantNode: "n1", wantLookups: 1, wantName: "Ada",
		},
		{
			name:       "no env granted",
			wantRegion: "", wantNode: "", wantLookups: 0,
		},
		{
			name:        "host not granted",
			env:         map[string]string{"ENRICH_LOOKUP_URL": lookup.URL + "/customers"},
			noHosts:     true,
			wantLookups: 0,
			wantError:   "customer lookup: outbound GET " + lookup.URL + "/customers?id=c-42: destination http://127.0.0.1:",
		},
		{
			name:        "lookup answers 404",
			env:         map[string]string{"ENRICH_LOOKUP_URL": lookup.URL + "/nope"},
			wantLookups: 1,
			wantError:   "customer lookup: status 404",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := spec("enrich", wasm)
			s.Capabilities.Env = tt.env
			if !tt.noHosts {
				s.Capabilities.AllowedOutboundHosts = []manifest.HostPattern{anyLocalPort}
			}
			f := load(t, e, s)
			before := lookups.Load()

			resp := wantOK(t, f, post("/enrich", []byte(`{"customer_id":"c-42","msg":"login","n":12345678901234567890}`)), "")
			var got map[string]any
			dec := json.NewDecoder(strings.NewReader(string(resp.Body)))
			dec.UseNumber()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decode %q: %v", resp.Body, err)
			}
			if got["msg"] != "login" || got["customer_id"] != "c-42" || got["n"] != json.Number("12345678901234567890") {
				t.Fatalf("event fields not preserved: %v", got)
			}
			if got["region"] != tt.wantRegion || got["node"] != tt.wantNode {
				t.Fatalf("region %q node %q, want %q %q (body %s)", got["region"], got["node"], tt.wantRegion, tt.wantNode, resp.Body)
			}
			if _, ok := got["received_at"].(string); !ok {
				t.Fatalf("no received_at: %v", got)
			}
			if n := lookups.Load() - before; n != tt.wantLookups {
				t.Fatalf("lookup server saw %d requests, want %d", n, tt.wantLookups)
			}
			if msg, _ := got["enrich_error"].(string); !strings.Contains(msg, tt.wantError) || (tt.wantError == "") != (msg == "") {
				t.Fatalf("enrich_error %q, want %q", msg, tt.wantError)
			}
			if tt.wantName == "" {
				if got["customer"] != nil {
					t.Fatalf("customer = %v, want null", got["customer"])
				}
				return
			}
			customer, ok := got["customer"].(map[string]any)
			if !ok || customer["name"] != tt.wantName || customer["tier"] != "gold" || customer["since"] != json.Number("2019") {
				t.Fatalf("customer = %v (enrich_error %v)", got["customer"], got["enrich_error"])
			}
			if id, _ := lastID.Load().(string); id != "c-42" {
				t.Fatalf("lookup for id %q", id)
			}
			wantMetric(t, "outbound ok", outbound(m, "enrich", "ok"), 1)
		})
	}
}

func TestEnvNotLeaked(t *testing.T) {
	wasm := reactor(t, guestHello)
	t.Setenv("GREETING", "Leaked")
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"not granted", nil, "Hello from Fermion!"},
		{"granted", map[string]string{"GREETING": "Hej"}, "Hej from Fermion!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEngine(t)
			s := spec("hello", wasm)
			s.Capabilities.Env = tt.env
			f := load(t, e, s)
			resp := wantOK(t, f, get("/hello"), "")
			if got := strings.TrimSpace(string(resp.Body)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
