package fhttptest_test

import (
	"io"
	"strings"
	"testing"

	"fermion.dev/fermion/sdk/fhttp"
	"fermion.dev/fermion/sdk/fhttp/fhttptest"
)

func greet(w fhttp.ResponseWriter, r *fhttp.Request) {
	if r.Method != fhttp.MethodPost {
		fhttp.Error(w, "POST only", fhttp.StatusMethodNotAllowed)
		return
	}
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(fhttp.StatusCreated)
	io.WriteString(w, "hello "+string(b)+" at "+r.Host+r.URL.Path+"?"+r.URL.Query().Get("x"))
}

func TestRecorder(t *testing.T) {
	tests := []struct {
		name, method, target, body string
		code                       int
		want                       string
	}{
		{"path", "POST", "/greet?x=1", "Ada", 201, "hello Ada at example.com/greet?1"},
		{"absolute URL", "POST", "https://api.example:8443/greet?x=2", "Bo", 201, "hello Bo at api.example:8443/greet?2"},
		{"error", "GET", "/greet", "", 405, "POST only\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := fhttptest.NewRequest(tt.method, tt.target, body)
			if r.ContentLength != int64(len(tt.body)) || r.Body == nil {
				t.Fatalf("request %+v", r)
			}
			w := fhttptest.NewRecorder()
			greet(w, r)
			if w.Code != tt.code || w.Body.String() != tt.want {
				t.Fatalf("%d %q, want %d %q", w.Code, w.Body, tt.code, tt.want)
			}
		})
	}
}

func TestNewRequestRejectsABadTarget(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a relative target")
		}
	}()
	fhttptest.NewRequest("GET", "relative", nil)
}
