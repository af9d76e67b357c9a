package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"fermion.dev/fermion/api/abi"
	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/certs"
	"fermion.dev/fermion/internal/telemetry"
)

// hop-by-hop headers a guest may not set on an outbound request.
var outboundDropHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Host": true,
}

// outbound performs a guest's outbound HTTP request and returns the encoded result:
// a response, or an error message the guest sees as its round trip's error.
func (f *Function) outbound(ctx context.Context, encoded []byte) []byte {
	var in abi.Request
	if err := abi.DecodeRequest(encoded, &in); err != nil {
		f.metrics.Outbound(telemetry.OutboundError)
		return abi.AppendResultError(nil, "malformed outbound request: "+err.Error())
	}
	u, err := url.Parse(in.URI)
	if err != nil || !u.IsAbs() || u.Host == "" {
		f.metrics.Outbound(telemetry.OutboundError)
		return abi.AppendResultError(nil, fmt.Sprintf("outbound URL %q must be absolute (scheme://host/path)", in.URI))
	}
	if u.User != nil {
		f.metrics.Outbound(telemetry.OutboundDenied)
		return abi.AppendResultError(nil, "outbound URLs with user info are not allowed")
	}
	if !f.spec.Capabilities.OutboundAllowed(u) {
		f.metrics.Outbound(telemetry.OutboundDenied)
		f.logger.Warn("outbound request denied", "url", u.Redacted())
		return abi.AppendResultError(nil, fmt.Sprintf("destination %s://%s is not in allowed_outbound_hosts", u.Scheme, u.Host))
	}
	timeout := f.spec.Capabilities.OutboundTimeout
	if timeout <= 0 {
		timeout = f.spec.Limits.Timeout
	}
	// The call's context carries only the instance; bound the request by the guest's own
	// request (client cancellation, trace) and whichever deadline comes first.
	st := stateOf(ctx)
	deadline := time.Now().Add(timeout)
	if st != nil && st.deadline != 0 {
		if d := startClock.at(st.deadline); d.Before(deadline) {
			deadline = d
		}
	}
	parent := ctx
	if st != nil && st.ctx != nil {
		parent = st.ctx
	}
	ctx, cancel := context.WithDeadline(parent, deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, in.Method, u.String(), bytes.NewReader(in.Body))
	if err != nil {
		f.metrics.Outbound(telemetry.OutboundError)
		return abi.AppendResultError(nil, "build outbound request: "+err.Error())
	}
	for _, h := range in.Headers {
		k := http.CanonicalHeaderKey(h.Name)
		if !outboundDropHeaders[k] {
			req.Header.Add(k, h.Value)
		}
	}
	resp, err := f.engine.outbound.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			f.metrics.Outbound(telemetry.OutboundTimeout)
			return abi.AppendResultError(nil, fmt.Sprintf("outbound request timed out after %s", timeout))
		}
		if certs.IsTLSFailure(err) {
			f.metrics.Outbound(telemetry.OutboundTLS)
			f.logger.Warn("outbound TLS failure", "url", u.Redacted(), "err", err)
		} else {
			f.metrics.Outbound(telemetry.OutboundError)
		}
		return abi.AppendResultError(nil, strings.TrimPrefix(err.Error(), "Get "))
	}
	defer resp.Body.Close()
	limit := f.spec.Limits.MaxResponseBody
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		f.metrics.Outbound(telemetry.OutboundError)
		return abi.AppendResultError(nil, "read outbound response: "+err.Error())
	}
	if int64(len(body)) > limit {
		f.metrics.Outbound(telemetry.OutboundError)
		return abi.AppendResultError(nil, "outbound response body exceeds "+v1.Count(limit, "byte"))
	}
	out := abi.Response{Status: resp.StatusCode, Body: body}
	for k, vs := range resp.Header {
		for _, v := range vs {
			out.Headers = append(out.Headers, abi.Header{Name: k, Value: v})
		}
	}
	f.metrics.Outbound(telemetry.OutboundOK)
	return abi.AppendResultOK(nil, &out)
}
