package controlplane

import (
	"net/http"
	"testing"
)

// TestConsoleFeatures: a feature is on exactly when the API's mux has a route of its
// own for it; the catch-all "/v1/" (a 404 "no route") and a shorter pattern such as
// GET /v1/deployments/{name} do not count.
func TestConsoleFeatures(t *testing.T) {
	ok := func(http.ResponseWriter, *http.Request) {}
	for _, tc := range []struct {
		name     string
		patterns []string
		want     map[string]bool
	}{
		{"none", nil, map[string]bool{"rollout": false, "slowest": false, "instances": false}},
		{"deployment routes only", []string{"GET /v1/deployments/{name}", "GET /v1/deployments/{name}/status"},
			map[string]bool{"rollout": false, "slowest": false, "instances": false}},
		{"instances", []string{"GET /v1/deployments/{name}", "GET /v1/deployments/{name}/instances"},
			map[string]bool{"rollout": false, "slowest": false, "instances": true}},
		{"instances for another method", []string{"POST /v1/deployments/{name}/instances"},
			map[string]bool{"rollout": false, "slowest": false, "instances": false}},
		{"all", []string{"GET /v1/deployments/{name}/rollout", "GET /v1/slis/slowest", "GET /v1/deployments/{name}/instances"},
			map[string]bool{"rollout": true, "slowest": true, "instances": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/v1/", ok)
			for _, p := range tc.patterns {
				mux.HandleFunc(p, ok)
			}
			got := consoleFeatures(mux)
			for k, want := range tc.want {
				if got[k] != want {
					t.Errorf("features[%q] = %v, want %v (all: %v)", k, got[k], want, got)
				}
			}
		})
	}
	if got := consoleFeatures(http.NotFoundHandler()); got != nil {
		t.Errorf("a handler that is not a mux: %v, want no features", got)
	}
}
