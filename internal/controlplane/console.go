package controlplane

import (
	"net/http"
	"net/url"

	"fermion.dev/fermion/internal/console"
)

// withConsole mounts the web console (package console) beside the API on the same
// handler, so it shares the API's listener and TLS: /v1/… stays the API, everything
// else is the console's (/ redirects to /ui/). The console identifies a token with
// the token store only to choose which buttons to show; its actions are API calls,
// checked by serveAPI like any other.
func (s *Server) withConsole(api http.Handler) (http.Handler, error) {
	if s.cfg.NoConsole {
		return api, nil
	}
	ui, err := console.New(console.Config{
		TraceUIURL: s.cfg.TraceUIURL,
		Version:    s.cfg.Version,
		Features:   consoleFeatures(api),
		Identify: func(tok string) (string, string, bool) {
			c, ok := s.tokens.verifyToken(tok)
			return c.ID, c.Role, ok
		},
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/", ui)
	return mux, nil
}

// consoleFeatures says which optional routes the API serves, asking its mux which
// pattern a request would reach: the catch-all "/v1/" means none.
func consoleFeatures(api http.Handler) map[string]bool {
	mux, ok := api.(*http.ServeMux)
	if !ok {
		return nil
	}
	serves := func(method, path string) bool {
		_, pattern := mux.Handler(&http.Request{Method: method, URL: &url.URL{Path: path}, Host: "console"})
		return pattern != "" && pattern != "/v1/"
	}
	return map[string]bool{
		"rollout": serves(http.MethodGet, "/v1/deployments/d/rollout"),
		"slowest": serves(http.MethodGet, "/v1/slis/slowest"),
		// The Debug view's per-instance timelines (console assets/instances.js).
		"instances": serves(http.MethodGet, "/v1/deployments/d/instances"),
	}
}
