// Package client is the Go client of Fermion's control plane HTTP API (/v1): deployments,
// nodes, tokens, events and policies, with the request and response types of package api/v1.
//
// Errors the server returns arrive as *v1.Error, wrapped with the operation that failed;
// match them by code with IsCode or errors.As, never by message text. Transport failures
// are wrapped with the operation too. Every method takes a context that bounds the call;
// the client sets no timeout of its own, so FollowEvents can stream for as long as the
// context lives.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
)

// Limits on what the client reads, so a broken or hostile server cannot exhaust memory.
// Variables so that tests can lower them.
var (
	maxResponseBytes int64 = 64 << 20 // a full event history of 10000 events is a few MiB
	maxEventBytes          = 1 << 20  // one line of a follow stream
)

const maxErrorBytes = 1 << 20

// DefaultUserAgent is sent unless WithUserAgent sets another.
const DefaultUserAgent = "fermion-client/v1"

// Client calls one control plane. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	token     string
	hc        *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a client without a timeout over
// http.DefaultTransport). A Timeout on it also cuts FollowEvents streams.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client of the control plane at baseURL (http://host:port, optionally
// with a path prefix) authenticating with token ("" sends no Authorization header).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	if !strings.Contains(baseURL, "://") {
		return nil, fmt.Errorf("server url %q: want http:// or https:// (http://%s?)", baseURL, strings.TrimSpace(baseURL))
	}
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("server url %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server url %q: want http:// or https://", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server url %q: no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("server url %q: give only scheme, host, port and path", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{base: u, token: token, hc: &http.Client{}, userAgent: DefaultUserAgent}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL returns the server URL the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// IsCode reports whether err is (or wraps) a *v1.Error with the given code.
func IsCode(err error, code string) bool {
	var e *v1.Error
	return errors.As(err, &e) && e.Code == code
}

// Condition is the precondition of PutDeployment. The zero value is Unconditional.
type Condition struct {
	revision uint64
	create   bool
	message  string
}

// WithMessage records message as the reason for the change in the revision it makes
// (fermion deploy --message); it does not change the condition.
func (c Condition) WithMessage(message string) Condition {
	c.message = message
	return c
}

// Unconditional writes whatever the deployment's current revision.
func Unconditional() Condition { return Condition{} }

// IfMatch writes only if the deployment's revision is still revision (the one read),
// so a concurrent change makes the write fail with code conflict.
func IfMatch(revision uint64) Condition { return Condition{revision: revision} }

// CreateOnly writes only if no deployment of that name exists (code conflict if one does).
func CreateOnly() Condition { return Condition{create: true} }

func (c Condition) String() string {
	switch {
	case c.create:
		return "create only"
	case c.revision != 0:
		return "if revision " + strconv.FormatUint(c.revision, 10)
	}
	return "unconditional"
}

// EventFilter selects events. Zero fields select everything; the server returns at
// most 100 events unless Limit says otherwise (at most 10000).
type EventFilter struct {
	Deployment string
	Node       string
	Type       string
	// Since selects events newer than this long ago; SinceTime those at or after an
	// instant. Give at most one.
	Since     time.Duration
	SinceTime time.Time
	// After selects events with a sequence number above it: pass the last Seq seen to
	// resume a history read or a follow stream without repeats.
	After uint64
	Limit int
}

func (f EventFilter) query() (url.Values, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("deployment", f.Deployment)
	set("node", f.Node)
	set("type", f.Type)
	if f.Since != 0 && !f.SinceTime.IsZero() {
		return nil, errors.New("give either Since or SinceTime, not both")
	}
	if f.Since < 0 {
		return nil, fmt.Errorf("since %s: must not be negative", f.Since)
	}
	if f.Since > 0 {
		set("since", f.Since.String())
	}
	if !f.SinceTime.IsZero() {
		set("since", f.SinceTime.UTC().Format(time.RFC3339Nano))
	}
	if f.After > 0 {
		set("after", strconv.FormatUint(f.After, 10))
	}
	if f.Limit < 0 {
		return nil, fmt.Errorf("limit %d: must not be negative", f.Limit)
	}
	if f.Limit > 0 {
		set("limit", strconv.Itoa(f.Limit))
	}
	return q, nil
}

// Info describes the control plane. Any valid token may read it.
func (c *Client) Info(ctx context.Context) (*v1.Info, error) {
	var info v1.Info
	if _, err := c.do(ctx, "get info", http.MethodGet, "/v1/info", nil, nil, nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// OpenAPI returns the server's OpenAPI document (no token needed).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	var raw json.RawMessage
	if _, err := c.do(ctx, "get openapi document", http.MethodGet, "/v1/openapi.json", nil, nil, nil, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// CreateToken creates a token (admin). The reply's Secret is the only copy of the token.
func (c *Client) CreateToken(ctx context.Context, req v1.TokenRequest) (*v1.Token, error) {
	var t v1.Token
	if _, err := c.do(ctx, "create token", http.MethodPost, "/v1/tokens", nil, nil, req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTokens lists the tokens, without their secrets (admin).
func (c *Client) ListTokens(ctx context.Context) (*v1.TokenList, error) {
	var l v1.TokenList
	if _, err := c.do(ctx, "list tokens", http.MethodGet, "/v1/tokens", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// RevokeToken deletes a token (admin); it stops working at once.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	op := "revoke token " + id
	if id == "" {
		return missing(op, "id")
	}
	_, err := c.do(ctx, op, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil, nil, nil)
	return err
}

// ListDeployments lists the deployments.
func (c *Client) ListDeployments(ctx context.Context) (*v1.DeploymentList, error) {
	var l v1.DeploymentList
	if _, err := c.do(ctx, "list deployments", http.MethodGet, "/v1/deployments", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// GetDeployment reads a deployment. Its Revision (from the ETag) is what IfMatch takes.
func (c *Client) GetDeployment(ctx context.Context, name string) (*v1.Deployment, error) {
	op := "get deployment " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var d v1.Deployment
	resp, err := c.do(ctx, op, http.MethodGet, deploymentPath(name), nil, nil, nil, &d)
	if err != nil {
		return nil, err
	}
	if rev, ok := parseETag(resp.Header.Get("ETag")); ok {
		d.Revision = rev
	}
	return &d, nil
}

// PutDeployment creates or updates a deployment under cond and reports whether it was
// created. A conflict (code conflict) means cond no longer held: re-read and retry. Code
// unplaceable means too few nodes fit and nothing was written; the error's message
// counts why. Code policy_denied means an admission policy refused it; the returned
// deployment's Warnings are what policies in mode warn said.
func (c *Client) PutDeployment(ctx context.Context, name string, spec v1.DeploymentSpec, cond Condition) (d *v1.Deployment, created bool, err error) {
	op := "put deployment " + name
	if name == "" {
		return nil, false, missing(op, "name")
	}
	h := http.Header{}
	switch {
	case cond.create:
		h.Set("If-None-Match", "*")
	case cond.revision != 0:
		h.Set("If-Match", strconv.Quote(strconv.FormatUint(cond.revision, 10)))
	}
	var q url.Values
	if cond.message != "" {
		q = url.Values{"message": {cond.message}}
	}
	var out v1.Deployment
	resp, err := c.do(ctx, op, http.MethodPut, deploymentPath(name), q, h, spec, &out)
	if err != nil {
		return nil, false, err
	}
	if rev, ok := parseETag(resp.Header.Get("ETag")); ok {
		out.Revision = rev
	}
	return &out, resp.StatusCode == http.StatusCreated, nil
}

// DeleteDeployment marks a deployment deleting: nodes drain it, then it goes. It returns
// the deployment as marked.
func (c *Client) DeleteDeployment(ctx context.Context, name string) (*v1.Deployment, error) {
	op := "delete deployment " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var d v1.Deployment
	if _, err := c.do(ctx, op, http.MethodDelete, deploymentPath(name), nil, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeploymentStatus reads a deployment's desired and actual state on every node.
func (c *Client) DeploymentStatus(ctx context.Context, name string) (*v1.DeploymentStatus, error) {
	op := "get status of deployment " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var s v1.DeploymentStatus
	if _, err := c.do(ctx, op, http.MethodGet, deploymentPath(name)+"/status", nil, nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ListNodes lists the nodes.
func (c *Client) ListNodes(ctx context.Context) (*v1.NodeList, error) {
	var l v1.NodeList
	if _, err := c.do(ctx, "list nodes", http.MethodGet, "/v1/nodes", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// GetNode reads a node.
func (c *Client) GetNode(ctx context.Context, name string) (*v1.Node, error) {
	return c.node(ctx, "get node", http.MethodGet, name, "")
}

// DrainNode makes a node unschedulable and moves its work off; its state goes from
// draining to drained when no work is left.
func (c *Client) DrainNode(ctx context.Context, name string) (*v1.Node, error) {
	return c.node(ctx, "drain node", http.MethodPost, name, "/drain")
}

// UncordonNode makes a drained or draining node schedulable again.
// RemoveNode forgets a lost or drained node.
func (c *Client) RemoveNode(ctx context.Context, name string) error {
	op := "remove node " + name
	if name == "" {
		return missing(op, "name")
	}
	_, err := c.do(ctx, op, http.MethodDelete, "/v1/nodes/"+url.PathEscape(name), nil, nil, nil, nil)
	return err
}

// UncordonNode makes a drained or draining node schedulable again.
func (c *Client) UncordonNode(ctx context.Context, name string) (*v1.Node, error) {
	return c.node(ctx, "uncordon node", http.MethodPost, name, "/uncordon")
}

func (c *Client) node(ctx context.Context, verb, method, name, suffix string) (*v1.Node, error) {
	op := verb + " " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var n v1.Node
	if _, err := c.do(ctx, op, method, "/v1/nodes/"+url.PathEscape(name)+suffix, nil, nil, nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Events reads the event history f selects, oldest first.
func (c *Client) Events(ctx context.Context, f EventFilter) (*v1.EventList, error) {
	const op = "list events"
	q, err := f.query()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var l v1.EventList
	if _, err := c.do(ctx, op, http.MethodGet, "/v1/events", q, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ApplyPolicy applies a policy file (admin) and reports whether it was created. A file
// that does not parse or compile is code bad_request, with every problem at its
// file:line:col in the message; nothing is written and the version in force stays.
func (c *Client) ApplyPolicy(ctx context.Context, name string, req v1.PolicyApply) (p *v1.Policy, created bool, err error) {
	op := "apply policy " + name
	if name == "" {
		return nil, false, missing(op, "name")
	}
	var out v1.Policy
	resp, err := c.do(ctx, op, http.MethodPut, policyPath(name), nil, nil, req, &out)
	if err != nil {
		return nil, false, err
	}
	return &out, resp.StatusCode == http.StatusCreated, nil
}

// ListPolicies lists the policies.
func (c *Client) ListPolicies(ctx context.Context) (*v1.PolicyList, error) {
	var l v1.PolicyList
	if _, err := c.do(ctx, "list policies", http.MethodGet, "/v1/policies", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// GetPolicy reads a policy at its latest version.
func (c *Client) GetPolicy(ctx context.Context, name string) (*v1.Policy, error) {
	op := "get policy " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var p v1.Policy
	if _, err := c.do(ctx, op, http.MethodGet, policyPath(name), nil, nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// DeletePolicy deletes a policy (admin); it stops applying at once.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	op := "delete policy " + name
	if name == "" {
		return missing(op, "name")
	}
	_, err := c.do(ctx, op, http.MethodDelete, policyPath(name), nil, nil, nil, nil)
	return err
}

// ViolationFilter selects policy violations. Zero fields select everything; the server
// returns at most 100 unless Limit says otherwise (at most 10000).
type ViolationFilter struct {
	Policy     string
	Deployment string
	// Since selects violations newer than this long ago; SinceTime those at or after
	// an instant. Give at most one.
	Since     time.Duration
	SinceTime time.Time
	After     uint64
	Limit     int
}

// PolicyViolations reads what policies denied, warned about and audited, oldest first:
// the policy events, each with its Violation.
func (c *Client) PolicyViolations(ctx context.Context, f ViolationFilter) (*v1.EventList, error) {
	const op = "list policy violations"
	q, err := EventFilter{Deployment: f.Deployment, Since: f.Since, SinceTime: f.SinceTime, After: f.After, Limit: f.Limit}.query()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if f.Policy != "" {
		q.Set("policy", f.Policy)
	}
	var l v1.EventList
	if _, err := c.do(ctx, op, http.MethodGet, "/v1/policies/violations", q, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// FollowEvents calls fn with each event f selects, in order: the history f selects,
// then every new event as it happens. It returns when ctx ends (ctx's error, wrapped),
// when fn returns an error (that error, as is) or when the stream breaks. To resume after
// a break without repeats, call it again with After set to the last event's Seq.
func (c *Client) FollowEvents(ctx context.Context, f EventFilter, fn func(v1.Event) error) error {
	const op = "follow events"
	q, err := f.query()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	q.Set("follow", "true")
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/events", q, nil, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, transportError(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %w", op, readError(resp))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		return fmt.Errorf("%s: the server answered with a list, not a stream (HTTP %d, %s); is it older than this client?", op, resp.StatusCode, mt)
	}
	var last uint64
	err = readEvents(resp.Body, func(e v1.Event) error {
		last = e.Seq
		return fn(e)
	})
	var fnErr callbackError
	switch {
	case errors.As(err, &fnErr):
		return fnErr.err
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, ctx.Err())
	case err == nil:
		err = io.ErrUnexpectedEOF // the server ends a stream only when it stops
	}
	return fmt.Errorf("%s: stream broke after event %d: %w", op, last, err)
}

// callbackError carries an error of FollowEvents' fn through readEvents.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// readEvents decodes a newline-delimited JSON stream of events, skipping blank
// keep-alive lines. It returns nil at the end of the stream.
func readEvents(r io.Reader, fn func(v1.Event) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br, maxEventBytes)
		if len(bytes.TrimSpace(line)) > 0 {
			var e v1.Event
			if jerr := json.Unmarshal(line, &e); jerr != nil {
				return fmt.Errorf("decode event: %w", jerr)
			}
			if ferr := fn(e); ferr != nil {
				return callbackError{ferr}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine reads one line (without its newline) of at most limit bytes.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > limit {
			return nil, fmt.Errorf("a line of the stream is longer than %d bytes", limit)
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), err
	}
}

func deploymentPath(name string) string { return "/v1/deployments/" + url.PathEscape(name) }

func policyPath(name string) string { return "/v1/policies/" + url.PathEscape(name) }

// missing is the error for a required argument the caller left empty.
func missing(op, field string) error {
	return fmt.Errorf("%s: %w", op, &v1.Error{Code: v1.CodeBadRequest, Field: field, Message: "required"})
}

// parseETag reads the revision out of `"17"` (or the weak W/"17").
func parseETag(s string) (uint64, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, false
	}
	rev, err := strconv.ParseUint(s[1:len(s)-1], 10, 64)
	return rev, err == nil && rev != 0
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, h http.Header, body any) (*http.Request, error) {
	// path is escaped already (names through url.PathEscape); keep it that way so a
	// name holding '/' stays one path segment.
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("request path %q: %w", u.RawPath, err)
	}
	u.Path = p
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	return req, nil
}

// do sends one request and decodes a 2xx body into out (when out is not nil). The
// returned response's body is closed; only its status and header are for the caller.
func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, h http.Header, body, out any) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, path, q, h, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, transportError(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s: %w", op, readError(resp))
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes)) // lets the connection be reused
		return resp, nil
	}
	b, err := readBounded(resp.Body, maxResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: read response: %w", op, transportError(ctx, err))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("%s: decode response (HTTP %d, %s): %w", op, resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	return resp, nil
}

// transportError prefers the context's error to the transport's description of it.
func transportError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return err
}

func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response larger than %d bytes", limit)
	}
	return b, nil
}

// readError turns a non-2xx response into a *v1.Error: the server's own when the body
// is an error body, otherwise one made from the status (a proxy's page, say).
func readError(resp *http.Response) *v1.Error {
	b, _ := readBounded(resp.Body, maxErrorBytes)
	var body v1.ErrorBody
	if json.Unmarshal(b, &body) == nil && body.Error != nil && body.Error.Code != "" {
		e := body.Error
		if e.RequestID == "" {
			e.RequestID = resp.Header.Get("X-Request-Id")
		}
		return e
	}
	msg := fmt.Sprintf("HTTP %s", resp.Status)
	if text := strings.TrimSpace(string(b)); text != "" {
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		msg += ": " + text
	}
	return &v1.Error{Code: codeForStatus(resp.StatusCode), Message: msg, RequestID: resp.Header.Get("X-Request-Id")}
}

// codeForStatus is the code of an error response whose body does not carry one.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotAcceptable, http.StatusUnsupportedMediaType:
		return v1.CodeBadRequest
	case http.StatusUnauthorized:
		return v1.CodeUnauthorized
	case http.StatusForbidden:
		return v1.CodeForbidden
	case http.StatusNotFound:
		return v1.CodeNotFound
	case http.StatusConflict, http.StatusPreconditionFailed:
		return v1.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return v1.CodeTooLarge
	case http.StatusUnprocessableEntity:
		return v1.CodeBadRequest
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return v1.CodeUnavailable
	}
	return v1.CodeInternal
}

// --- SLOs and alerts (issue 14) ---

func sloPath(name string) string { return "/v1/slos/" + url.PathEscape(name) }

// ApplySLOs applies every SLO of a YAML file (deployer) and reports whether any was
// created. A file with any problem is code bad_request with every problem at its
// file:line:col in the message, and nothing is written.
func (c *Client) ApplySLOs(ctx context.Context, req v1.SLOApply) (l *v1.SLOList, created bool, err error) {
	var out v1.SLOList
	resp, err := c.do(ctx, "apply SLOs", http.MethodPut, "/v1/slos", nil, nil, req, &out)
	if err != nil {
		return nil, false, err
	}
	return &out, resp.StatusCode == http.StatusCreated, nil
}

// ListSLOs lists the SLOs.
func (c *Client) ListSLOs(ctx context.Context) (*v1.SLOList, error) {
	var l v1.SLOList
	if _, err := c.do(ctx, "list SLOs", http.MethodGet, "/v1/slos", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// GetSLO reads an SLO at its latest version.
func (c *Client) GetSLO(ctx context.Context, name string) (*v1.SLO, error) {
	op := "get SLO " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var s v1.SLO
	if _, err := c.do(ctx, op, http.MethodGet, sloPath(name), nil, nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DeleteSLO deletes an SLO (deployer); its alerts resolve at the next evaluation.
func (c *Client) DeleteSLO(ctx context.Context, name string) error {
	op := "delete SLO " + name
	if name == "" {
		return missing(op, "name")
	}
	_, err := c.do(ctx, op, http.MethodDelete, sloPath(name), nil, nil, nil, nil)
	return err
}

// SLOStatus reads an SLO's budget, burn rates and alerts per series.
func (c *Client) SLOStatus(ctx context.Context, name string) (*v1.SLOStatus, error) {
	op := "read SLO status " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var s v1.SLOStatus
	if _, err := c.do(ctx, op, http.MethodGet, sloPath(name)+"/status", nil, nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Alerts lists pending and firing SLO alerts, one incident per app; all adds the
// recently resolved ones.
func (c *Client) Alerts(ctx context.Context, all bool) (*v1.AlertList, error) {
	q := url.Values{}
	if all {
		q.Set("all", "true")
	}
	var l v1.AlertList
	if _, err := c.do(ctx, "list alerts", http.MethodGet, "/v1/alerts", q, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// MarkAlertsExpected marks an app's version's pages expected until m.Until (a zero
// Until removes the mark).
func (c *Client) MarkAlertsExpected(ctx context.Context, m v1.AlertMark) error {
	_, err := c.do(ctx, "mark alerts expected", http.MethodPost, "/v1/alerts/expected", nil, nil, m, nil)
	return err
}

// ---- Fleet SLIs ----

// SLIQuery selects and groups the fleet's SLIs (GET /v1/slis). Empty filters match
// everything; By nil groups by app and version, By empty (non-nil) gives one row;
// Window 0 is the server's default (5 minutes).
type SLIQuery struct {
	App, Version, Node, Region, Zone string
	By                               []string
	Window                           time.Duration
}

func (q SLIQuery) values() (url.Values, error) {
	v := url.Values{}
	for k, s := range map[string]string{"app": q.App, "version": q.Version, "node": q.Node, "region": q.Region, "zone": q.Zone} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.By != nil {
		v.Set("by", strings.Join(q.By, ","))
	}
	if q.Window < 0 {
		return nil, fmt.Errorf("window %s: must not be negative", q.Window)
	}
	if q.Window > 0 {
		if q.Window%time.Second != 0 {
			return nil, fmt.Errorf("window %s: give whole seconds", q.Window)
		}
		v.Set("window", formatWindow(q.Window))
	}
	return v, nil
}

// formatWindow writes d in the largest unit that divides it (90d, 6h, 90s), as the
// server reads windows.
func formatWindow(d time.Duration) string {
	for _, u := range []struct {
		s string
		d time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.s
		}
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// SLIs reads the fleet's SLIs over a window: rates, error and cold-start ratios and
// latency quantiles per group. A bad dimension or window is code bad_request with the
// parameter in Field.
func (c *Client) SLIs(ctx context.Context, q SLIQuery) (*v1.SLIList, error) {
	const op = "read slis"
	v, err := q.values()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var l v1.SLIList
	if _, err := c.do(ctx, op, http.MethodGet, "/v1/slis", v, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// SlowestQuery selects GET /v1/slis/slowest's requests; empty fields are left out
// (the server's defaults: every app, the last 15 minutes, 20 requests).
type SlowestQuery struct {
	App, Version, Node, Region, Zone string
	// Window is a duration such as "5m" (at most v1.SlowestWindowMax).
	Window string
	Limit  int
}

// SlowestRequests reads the fleet's slowest recent requests, slowest first, with their
// trace ids. A bad parameter is code bad_request with the parameter in Field.
func (c *Client) SlowestRequests(ctx context.Context, q SlowestQuery) (*v1.SlowestRequests, error) {
	const op = "read slowest requests"
	v := url.Values{}
	for k, val := range map[string]string{"app": q.App, "version": q.Version, "node": q.Node, "region": q.Region, "zone": q.Zone, "window": q.Window} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out v1.SlowestRequests
	if _, err := c.do(ctx, op, http.MethodGet, "/v1/slis/slowest", v, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revisions lists a deployment's revisions, the newest first, and names the current one.
func (c *Client) Revisions(ctx context.Context, name string) (*v1.RevisionList, error) {
	op := "list revisions of deployment " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var out v1.RevisionList
	if _, err := c.do(ctx, op, http.MethodGet, deploymentPath(name)+"/revisions", nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revision reads revision n of a deployment; code not_found when it is not kept.
func (c *Client) Revision(ctx context.Context, name string, n int64) (*v1.Revision, error) {
	op := fmt.Sprintf("get revision %d of deployment %s", n, name)
	if name == "" {
		return nil, missing(op, "name")
	}
	var out v1.Revision
	if _, err := c.do(ctx, op, http.MethodGet, deploymentPath(name)+"/revisions/"+strconv.FormatInt(n, 10), nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollback returns a deployment to the revision req.To (0: the one before the current)
// through the same admission as a deploy, and returns the deployment as written: its
// Change is the new revision. Code not_found names the revisions kept; a refusal by
// policy, signature or placement writes nothing.
func (c *Client) Rollback(ctx context.Context, name string, req v1.RollbackRequest) (*v1.Deployment, error) {
	op := "roll back deployment " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var out v1.Deployment
	resp, err := c.do(ctx, op, http.MethodPost, deploymentPath(name)+"/rollback", nil, nil, req, &out)
	if err != nil {
		return nil, err
	}
	if rev, ok := parseETag(resp.Header.Get("ETag")); ok {
		out.Revision = rev
	}
	return &out, nil
}

// --- Rollouts (issue 15) ---

// Rollout returns a deployment's latest rollout: its steps, phase and verdicts.
// A deployment that never had one is an *Error with code not_found.
func (c *Client) Rollout(ctx context.Context, name string) (*v1.Rollout, error) {
	op := "get the rollout of " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	var out v1.Rollout
	if _, err := c.do(ctx, op, http.MethodGet, deploymentPath(name)+"/rollout", nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RolloutAction promotes, aborts, pauses or resumes a deployment's rollout
// (v1.RolloutPromote …), recording reason; an action the rollout's phase refuses is
// an *Error with code conflict.
func (c *Client) RolloutAction(ctx context.Context, name, action, reason string) (*v1.Rollout, error) {
	op := action + " the rollout of " + name
	if name == "" {
		return nil, missing(op, "name")
	}
	switch action {
	case v1.RolloutPromote, v1.RolloutAbort, v1.RolloutPause, v1.RolloutResume:
	default:
		return nil, fmt.Errorf("%s: %q is not a rollout action; use promote, abort, pause or resume", op, action)
	}
	var out v1.Rollout
	if _, err := c.do(ctx, op, http.MethodPost, deploymentPath(name)+"/rollout/"+action, nil, nil, v1.RolloutActionRequest{Reason: reason}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Backup and restore (opsurface).

// Backup streams an archive of the control plane's state into w (admin). The archive
// is whole only when Backup returns nil; write it to a temporary file and rename.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/backup", nil, nil, nil)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	req.Header.Set("Accept", "application/gzip")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", transportError(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("backup: %w", readError(resp))
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("backup: read archive: %w", transportError(ctx, err))
	}
	return n, nil
}

// Restore loads an archive from Backup into a fresh control plane (admin).
func (c *Client) Restore(ctx context.Context, archive io.Reader) (*v1.BackupSummary, error) {
	req, err := c.newRequest(ctx, http.MethodPut, "/v1/restore", nil, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	req.Body = io.NopCloser(archive)
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", transportError(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("restore: %w", readError(resp))
	}
	b, err := readBounded(resp.Body, maxResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("restore: read response: %w", transportError(ctx, err))
	}
	var out v1.BackupSummary
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("restore: decode response: %w", err)
	}
	return &out, nil
}

// NodeInstances reads a node's instance timelines (every deployment's when deployment
// is empty), which the control plane asks the node's agent for; a node that does not
// answer is listed in Unreachable with why.
func (c *Client) NodeInstances(ctx context.Context, node, deployment string) (*v1.InstancesList, error) {
	const op = "read node instances"
	v := url.Values{}
	if deployment != "" {
		v.Set("deployment", deployment)
	}
	var out v1.InstancesList
	if _, err := c.do(ctx, op, http.MethodGet, "/v1/nodes/"+url.PathEscape(node)+"/instances", v, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeploymentInstances reads a deployment's instance timelines on every node it is
// placed on; the nodes that did not answer are listed in Unreachable with why.
func (c *Client) DeploymentInstances(ctx context.Context, name string) (*v1.InstancesList, error) {
	const op = "read deployment instances"
	var out v1.InstancesList
	if _, err := c.do(ctx, op, http.MethodGet, "/v1/deployments/"+url.PathEscape(name)+"/instances", nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
