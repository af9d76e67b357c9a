package controlplane_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
)

// TestConsoleMounted: the console shares the API's handler: / redirects to it, its
// session endpoint knows the API's tokens and roles, /v1 stays the API's; with
// NoConsole only the API answers.
func TestConsoleMounted(t *testing.T) {
	p := cptest.Start(t, controlplane.Config{TraceUIURL: "http://jaeger:16686/trace/{trace_id}"})
	cl, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := cl.CreateToken(context.Background(), v1.TokenRequest{Role: v1.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, token string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", p.API+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	for _, tc := range []struct {
		name, path, token string
		status            int
		want              string
	}{
		{"root", "/", "", http.StatusFound, ""},
		{"page", "/ui/", "", 200, "Fermion console"},
		{"trace template", "/ui/config.json", "", 200, "{trace_id}"},
		// The optional routes, as the API's router answers.
		{"features", "/ui/config.json", "", 200, `"slowest":true`},
		{"admin session", "/ui/session", p.Token, 200, `"role":"admin"`},
		{"viewer session", "/ui/session", viewer.Secret, 200, `"role":"viewer"`},
		{"refused session", "/ui/session", "fmn_nope", 401, "unknown, revoked or expired"},
		{"api unchanged", "/v1/info", p.Token, 200, `"version"`},
		{"api 404 stays the api's", "/v1/nope", p.Token, 404, "openapi.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := get(tc.path, tc.token)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("GET %s: %d %.200s; want %d with %q", tc.path, status, body, tc.status, tc.want)
			}
			if tc.path == "/" && hdr.Get("Location") != "/ui/" {
				t.Errorf("redirect to %q", hdr.Get("Location"))
			}
		})
	}

	off := cptest.Start(t, controlplane.Config{NoConsole: true})
	res, err := http.Get(off.API + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("NoConsole: GET /ui/ is %d, want 404", res.StatusCode)
	}

	if _, err := controlplane.Start(context.Background(), controlplane.Config{DataDir: t.TempDir(), TraceUIURL: "http://jaeger/trace"}); err == nil || !strings.Contains(err.Error(), "{trace_id}") {
		t.Errorf("a trace UI URL without {trace_id}: %v", err)
	}
}
