package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/fleet"
	"fermion.dev/fermion/internal/sloctl"
)

// maxBody bounds an API request body.
const maxBody = 1 << 20

// apiHandler serves one route for an authenticated caller: it returns the body to
// encode and its status, or an error; (nil, 0, nil) when it wrote the response itself.
type apiHandler func(w http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error)

// routeFunc registers a handler for pattern (a net/http pattern, also its metrics
// label) behind serveAPI: token authentication, the least role it needs, the body
// limit, request ids, errors as v1.ErrorBody and the API metrics.
type routeFunc func(pattern, role string, h apiHandler)

// routeGroup registers one resource's routes.
type routeGroup func(route routeFunc)

// api is the HTTP API's handlers (/v1/…). It holds the state and the services the
// handlers call, never the Server.
type api struct {
	cfg       *Config
	logger    *slog.Logger
	metrics   *metrics
	st        *state.Store
	tokens    *tokenStore
	policies  *policies
	admission *admitter
	placer    *placer
	resolver  *imageResolver
	evlog     *eventLog
	event     func(context.Context, v1.Event)
	leaderNow func(ctx context.Context) string // who holds the leader lease now
	natsURL   func() string
	slos      *sloctl.Controller // SLO hook (sloengine): set when the SLO engine starts
	slis      *fleet.Store       // the fleet SLI store, set when it starts (api_slis.go)
	slowest   *fleet.Slowest     // the slowest recent requests, set with slis
}

// newAPI builds the /v1 routes from groups, each route naming the least role it
// needs. A new resource adds its group where the Server builds the API (server.go).
func (s *api) newAPI(groups ...routeGroup) http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, role string, h apiHandler) {
		name := pattern
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { s.serveAPI(w, r, name, role, h) })
	}
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(v1.OpenAPI)
	})
	for _, g := range groups {
		g(route)
	}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, &v1.Error{Code: v1.CodeNotFound, Message: fmt.Sprintf("no route %s %s; see /v1/openapi.json", r.Method, r.URL.Path)})
	})
	return mux
}

// coreRoutes are the routes of info, tokens, deployments, nodes, events and policies.
func (s *api) coreRoutes(route routeFunc) {
	route("GET /v1/info", v1.RoleViewer, s.apiInfo)
	route("POST /v1/tokens", v1.RoleAdmin, s.apiCreateToken)
	route("GET /v1/tokens", v1.RoleAdmin, s.apiListTokens)
	route("DELETE /v1/tokens/{id}", v1.RoleAdmin, s.apiRevokeToken)
	route("GET /v1/deployments", v1.RoleViewer, s.apiListDeployments)
	route("GET /v1/deployments/{name}", v1.RoleViewer, s.apiGetDeployment)
	route("PUT /v1/deployments/{name}", v1.RoleDeployer, s.apiPutDeployment)
	route("DELETE /v1/deployments/{name}", v1.RoleDeployer, s.apiDeleteDeployment)
	route("GET /v1/deployments/{name}/status", v1.RoleViewer, s.apiDeploymentStatus)
	route("GET /v1/nodes", v1.RoleViewer, s.apiListNodes)
	route("GET /v1/nodes/{name}", v1.RoleViewer, s.apiGetNode)
	route("DELETE /v1/nodes/{name}", v1.RoleDeployer, s.apiRemoveNode)
	route("POST /v1/nodes/{name}/drain", v1.RoleDeployer, s.apiDrain)
	route("POST /v1/nodes/{name}/uncordon", v1.RoleDeployer, s.apiUncordon)
	route("GET /v1/events", v1.RoleViewer, s.apiEvents)
	route("GET /v1/policies", v1.RoleViewer, s.apiListPolicies)
	route("GET /v1/policies/violations", v1.RoleViewer, s.apiPolicyViolations)
	route("GET /v1/policies/{name}", v1.RoleViewer, s.apiGetPolicy)
	route("PUT /v1/policies/{name}", v1.RoleAdmin, s.apiPutPolicy)
	route("DELETE /v1/policies/{name}", v1.RoleAdmin, s.apiDeletePolicy)
}

func statusFor(code string) int {
	switch code {
	case v1.CodeBadRequest:
		return http.StatusBadRequest
	case v1.CodeUnauthorized:
		return http.StatusUnauthorized
	case v1.CodeForbidden:
		return http.StatusForbidden
	case v1.CodeNotFound:
		return http.StatusNotFound
	case v1.CodeConflict, v1.CodeUnplaceable:
		return http.StatusConflict
	case v1.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case v1.CodePolicyDenied, v1.CodeArtifact:
		return http.StatusUnprocessableEntity
	case v1.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, r *http.Request, status int, e *v1.Error) {
	e.RequestID = w.Header().Get("X-Request-Id")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v1.ErrorBody{Error: e})
}

func (s *api) serveAPI(w http.ResponseWriter, r *http.Request, route, role string, h apiHandler) {
	start := time.Now()
	rid := r.Header.Get("X-Request-Id")
	if rid == "" || len(rid) > 128 {
		rid = randomHex(8)
	}
	w.Header().Set("X-Request-Id", rid)
	status := http.StatusOK
	defer func() {
		s.metrics.apiRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		s.metrics.apiSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}()
	fail := func(e *v1.Error) {
		status = statusFor(e.Code)
		writeError(w, r, status, e)
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fermion"`)
		fail(&v1.Error{Code: v1.CodeUnauthorized, Message: "send a token: Authorization: Bearer <token> (fermion token create, or the admin token in the server's data directory)"})
		return
	}
	caller, ok := s.tokens.verifyToken(strings.TrimSpace(tok))
	if !ok {
		fail(&v1.Error{Code: v1.CodeUnauthorized, Message: "the token is unknown, revoked or expired"})
		return
	}
	if roleRank(caller.Role) < roleRank(role) {
		fail(&v1.Error{Code: v1.CodeForbidden, Message: fmt.Sprintf("a %s token may not do this; it needs the %s role", caller.Role, role)})
		return
	}
	limit := int64(maxBody)
	if l, ok := routeBodyLimits[route]; ok { // backup.go: a restore's archive
		limit = l
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	out, code, e := h(w, r, caller)
	if e != nil {
		if e.Code == v1.CodeInternal || e.Code == v1.CodeUnavailable {
			s.logger.Error("api", "route", route, "request_id", rid, "err", e.Message)
		}
		fail(e)
		return
	}
	if out == nil {
		if code == 0 {
			return // the handler wrote the response (a stream)
		}
		status = code
		w.WriteHeader(code)
		return
	}
	status = code
	writeJSON(w, r, code, out) // apijson.go
}

// decodeBody decodes a JSON body strictly: unknown fields and trailing data are errors.
func decodeBody(r *http.Request, v any) *v1.Error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return &v1.Error{Code: v1.CodeTooLarge, Message: fmt.Sprintf("the body exceeds %d bytes", maxBody)}
		case errors.Is(err, io.EOF):
			return &v1.Error{Code: v1.CodeBadRequest, Message: "the body is empty; send a JSON object"}
		}
		msg := err.Error()
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return &v1.Error{Code: v1.CodeBadRequest, Field: ute.Field, Message: fmt.Sprintf("want a %s, got a JSON %s", ute.Type, ute.Value)}
		}
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return &v1.Error{Code: v1.CodeBadRequest, Field: strings.Trim(f, `"`), Message: "unknown field " + f + "; see /v1/openapi.json"}
		}
		return &v1.Error{Code: v1.CodeBadRequest, Message: "the body is not valid JSON: " + msg}
	}
	if dec.More() {
		return &v1.Error{Code: v1.CodeBadRequest, Message: "trailing data after the JSON object"}
	}
	return nil
}

// unavailable is the API error for a storage failure. step names what the server was
// doing (store token, mark deployment deleting), never the API operation itself: the
// caller knows that and names it ("create token: store token: …"), so repeating it
// would print it twice.
func unavailable(step string, err error) *v1.Error {
	return &v1.Error{Code: v1.CodeUnavailable, Message: step + ": " + err.Error()}
}

func (s *api) apiInfo(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	info := v1.Info{Version: s.cfg.Version, Server: s.cfg.Name, Leader: s.leaderNow(r.Context()), Registry: s.cfg.RegistryHost,
		LeaseRenewSeconds: s.cfg.LeaseRenew.Seconds(), LeaseLostSeconds: s.cfg.LeaseLost.Seconds()}
	if u := s.natsURL(); u != "" {
		info.NATS = strings.Split(u, ",")
	}
	return info, http.StatusOK, nil
}
