// Package guesttest holds the SDK APIs' shared test helpers: a request run through the
// registered handler as the wasm export runs it, natively. Tests only; a guest that
// imported it would link package testing.
package guesttest

import (
	"testing"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/sdk/internal/guest"
)

// Call runs req through guest.Serve, as fermion_handle does, and decodes the response.
func Call(t *testing.T, req *abi.Request) (abi.Response, int32) {
	t.Helper()
	out, code := guest.Serve(abi.AppendRequest(nil, req), nil)
	var resp abi.Response
	if code != abi.HandleOK {
		return resp, code
	}
	if err := abi.DecodeResponse(out, &resp, false); err != nil {
		t.Fatal(err)
	}
	return resp, code
}

// Values returns the values of the response's header entries named name, in order.
func Values(r abi.Response, name string) []string {
	var vs []string
	for _, h := range r.Headers {
		if h.Name == name {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

// Headers makes a header list from name, value pairs.
func Headers(kv ...string) []abi.Header {
	var hs []abi.Header
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, abi.Header{Name: kv[i], Value: kv[i+1]})
	}
	return hs
}
