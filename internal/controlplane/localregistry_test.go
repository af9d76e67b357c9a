package controlplane

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestLocalRegistry(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 100_000) // more than a pipe holds at once
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/":
			w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
			w.Header().Set("Content-Length", "2")
			io.WriteString(w, "{}")
		case "/v2/big":
			for i := 0; i < len(big); i += 4096 {
				w.Write(big[i:min(i+4096, len(big))])
			}
		case "/v2/echo":
			b, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusCreated)
			w.Write(b)
		case "/v2/silent":
		default:
			http.NotFound(w, r)
		}
	})
	var passed []string
	lr := &localRegistry{host: "registry.test:5000", h: h, next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		passed = append(passed, r.URL.Host)
		return &http.Response{StatusCode: 418, Body: http.NoBody, Request: r}, nil
	})}
	c := &http.Client{Transport: lr}
	do := func(method, url, body string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	if resp, b := do("GET", "https://registry.test:5000/v2/", ""); resp.StatusCode != 200 || string(b) != "{}" ||
		resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" || resp.ContentLength != 2 {
		t.Fatalf("GET /v2/ = %d %q %v %d", resp.StatusCode, b, resp.Header, resp.ContentLength)
	}
	if resp, b := do("GET", "http://registry.test:5000/v2/big", ""); resp.StatusCode != 200 || !bytes.Equal(b, big) {
		t.Fatalf("GET big = %d, %d bytes", resp.StatusCode, len(b))
	}
	if resp, b := do("POST", "http://registry.test:5000/v2/echo", "payload"); resp.StatusCode != 201 || string(b) != "payload" {
		t.Fatalf("POST echo = %d %q", resp.StatusCode, b)
	}
	if resp, b := do("HEAD", "http://registry.test:5000/v2/", ""); resp.StatusCode != 200 || len(b) != 0 ||
		resp.Header.Get("Content-Length") != strconv.Itoa(2) {
		t.Fatalf("HEAD = %d %q %v", resp.StatusCode, b, resp.Header)
	}
	if resp, _ := do("GET", "http://registry.test:5000/v2/silent", ""); resp.StatusCode != 200 {
		t.Fatalf("a handler that wrote nothing = %d, want 200", resp.StatusCode)
	}
	if resp, _ := do("GET", "http://registry.test:5000/v2/missing", ""); resp.StatusCode != 404 {
		t.Fatalf("GET missing = %d", resp.StatusCode)
	}
	if resp, _ := do("GET", "https://elsewhere.test/v2/", ""); resp.StatusCode != 418 || len(passed) != 1 || passed[0] != "elsewhere.test" {
		t.Fatalf("another host: %d, passed on %v", resp.StatusCode, passed)
	}
}
