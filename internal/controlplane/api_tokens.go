package controlplane

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
)

// The /v1/tokens handlers.

func (s *api) apiCreateToken(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	var req v1.TokenRequest
	if e := decodeBody(r, &req); e != nil {
		return nil, 0, e
	}
	if !slices.Contains(v1.Roles, req.Role) {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "role", Message: fmt.Sprintf("%q: want one of %s", req.Role, strings.Join(v1.Roles, ", "))}
	}
	if len(req.Description) > 256 {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "description", Message: "at most 256 bytes"}
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "ttl", Message: fmt.Sprintf("%q: want a positive duration such as 24h", req.TTL)}
		}
		ttl = d
	}
	t, err := s.tokens.createToken(r.Context(), req.Role, req.Description, ttl)
	if err != nil {
		return nil, 0, unavailable("store token", err)
	}
	return t, http.StatusCreated, nil
}

func (s *api) apiListTokens(_ http.ResponseWriter, _ *http.Request, _ cred) (any, int, *v1.Error) {
	out := v1.TokenList{Tokens: []v1.Token{}}
	s.st.Creds.Each(func(_ string, c *cred, _ uint64) {
		if c.Kind == "token" {
			out.Tokens = append(out.Tokens, tokenOf(c))
		}
	})
	slices.SortFunc(out.Tokens, func(a, b v1.Token) int { return a.Created.Compare(b.Created) })
	return out, http.StatusOK, nil
}

func (s *api) apiRevokeToken(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	id := r.PathValue("id")
	if _, _, ok := s.st.Creds.Get("token." + id); !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no token " + id}
	}
	if id == caller.ID {
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: "a token cannot revoke itself; use another admin token"}
	}
	if err := s.st.Creds.Delete(r.Context(), "token."+id); err != nil {
		return nil, 0, unavailable("delete token record", err)
	}
	return nil, http.StatusNoContent, nil
}
