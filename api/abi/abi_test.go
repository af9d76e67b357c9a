package abi_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"fermion.dev/fermion/api/abi"
)

// normRequest and normResponse make empty and nil slices compare equal: an empty body
// or header list decodes as nil.
func normRequest(r abi.Request) abi.Request {
	if len(r.Headers) == 0 {
		r.Headers = nil
	}
	if len(r.Body) == 0 {
		r.Body = nil
	}
	return r
}

func normResponse(r abi.Response) abi.Response {
	if len(r.Headers) == 0 {
		r.Headers = nil
	}
	if len(r.Body) == 0 {
		r.Body = nil
	}
	return r
}

func TestRequestRoundTrip(t *testing.T) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	// More than 255 fields: FinishRequest writes every byte of the count.
	many := make([]abi.Header, 70000)
	for i := range many {
		many[i] = abi.Header{Name: "N", Value: string(rune('a' + i%26))}
	}
	tests := []struct {
		name string
		req  abi.Request
	}{
		{"zero", abi.Request{}},
		{"simple", abi.Request{Method: "GET", URI: "/x?y=1", Host: "h:80", RemoteAddr: "1.2.3.4:5"}},
		{"headers", abi.Request{Method: "POST", URI: "/", Headers: []abi.Header{{"A", "1"}, {"A", "2"}, {"", ""}, {"B", "ünï"}}}},
		{"binary body", abi.Request{Method: "PUT", URI: "/b", Body: binary}},
		{"many headers", abi.Request{Method: "GET", URI: "/", Headers: many, Body: []byte("after the fields")}},
		{"large body", abi.Request{Method: "PUT", URI: "/big", Body: bytes.Repeat([]byte("xyz"), 1<<20)}},
		{"outbound", abi.Request{Method: "GET", URI: "https://api.example.com/v1?q=%20", Host: "api.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := abi.AppendRequest([]byte("prefix"), &tt.req)
			if !bytes.HasPrefix(enc, []byte("prefix")) {
				t.Fatal("AppendRequest overwrote its destination")
			}
			enc = enc[len("prefix"):]
			var got abi.Request
			if err := abi.DecodeRequest(enc, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normRequest(got), normRequest(tt.req)) {
				t.Fatalf("got %+v, want %+v", got, tt.req)
			}
			// Decoded values are copies: the guest reuses its buffer for the next request.
			for i := range enc {
				enc[i] = 0xAA
			}
			if !reflect.DeepEqual(normRequest(got), normRequest(tt.req)) {
				t.Fatal("the decoded request aliases the encoding")
			}
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		resp abi.Response
	}{
		{"zero", abi.Response{}},
		{"ok", abi.Response{Status: 200, Headers: []abi.Header{{"Content-Type", "text/plain"}}, Body: []byte("hi")}},
		{"max status", abi.Response{Status: 1<<32 - 1}},
		{"many headers", abi.Response{Status: 204, Headers: []abi.Header{{"A", "1"}, {"B", "2"}, {"A", "3"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, alias := range []bool{false, true} {
				enc := abi.AppendResponse(nil, &tt.resp)
				var got abi.Response
				if err := abi.DecodeResponse(enc, &got, alias); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(normResponse(got), normResponse(tt.resp)) {
					t.Fatalf("alias %v: got %+v, want %+v", alias, got, tt.resp)
				}
				if len(got.Body) > 0 {
					enc[len(enc)-1] ^= 0xff
					if aliased := got.Body[len(got.Body)-1] != tt.resp.Body[len(tt.resp.Body)-1]; aliased != alias {
						t.Fatalf("alias %v: body aliases the encoding: %v", alias, aliased)
					}
				}
			}
		})
	}
}

func TestResult(t *testing.T) {
	resp := abi.Response{Status: 201, Headers: []abi.Header{{"X", "y"}}, Body: []byte("created")}
	var got abi.Response
	msg, err := abi.DecodeResult(abi.AppendResultOK(nil, &resp), &got)
	if err != nil || msg != "" || !reflect.DeepEqual(got, resp) {
		t.Fatalf("ok result: %q %v %+v", msg, err, got)
	}
	msg, err = abi.DecodeResult(abi.AppendResultError(nil, "destination not allowed"), &got)
	if err != nil || msg != "destination not allowed" {
		t.Fatalf("error result: %q %v", msg, err)
	}
	if _, err := abi.DecodeResult(nil, &got); !errors.Is(err, abi.ErrShort) {
		t.Fatalf("empty result: %v", err)
	}
	if _, err := abi.DecodeResult([]byte{7}, &got); err == nil || !strings.Contains(err.Error(), "unknown result tag") {
		t.Fatalf("unknown tag: %v", err)
	}
	if _, err := abi.DecodeResult(append(abi.AppendResultError(nil, "x"), 0), &got); err == nil {
		t.Fatal("trailing bytes after an error result accepted")
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/", Headers: []abi.Header{{"A", "b"}}, Body: []byte("body")})
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, abi.ErrShort},
		{"truncated length", []byte{1, 0}, abi.ErrShort},
		{"truncated body", valid[:len(valid)-1], abi.ErrTooLarge},
		{"truncated fields", valid[:9], abi.ErrShort},
		{"huge string length", []byte{0xff, 0xff, 0xff, 0xff, 'G'}, abi.ErrTooLarge},
		// 2^32-1 headers in a tiny message must be refused before allocating for them.
		{"huge header count", append(abi.AppendRequest(nil, &abi.Request{})[:16], 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0), abi.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r abi.Request
			if err := abi.DecodeRequest(tt.in, &r); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("trailing bytes", func(t *testing.T) {
		var r abi.Request
		if err := abi.DecodeRequest(append(valid, 0), &r); err == nil || !strings.Contains(err.Error(), "trailing") {
			t.Fatalf("err = %v", err)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte{})
	f.Add(abi.AppendRequest(nil, &abi.Request{}))
	f.Add(abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/x?y", Host: "h", RemoteAddr: "r",
		Headers: []abi.Header{{"A", "1"}, {"B", ""}}, Body: []byte("body")}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		var r abi.Request
		if err := abi.DecodeRequest(in, &r); err != nil {
			return
		}
		// The encoding is canonical: a decoded message encodes to the same bytes.
		enc := abi.AppendRequest(nil, &r)
		if !bytes.Equal(enc, in) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, enc)
		}
		var again abi.Request
		if err := abi.DecodeRequest(enc, &again); err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if !reflect.DeepEqual(normRequest(again), normRequest(r)) {
			t.Fatalf("round trip: %+v != %+v", again, r)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte{}, false)
	f.Add(abi.AppendResponse(nil, &abi.Response{}), true)
	f.Add(abi.AppendResponse(nil, &abi.Response{Status: 200, Headers: []abi.Header{{"Content-Type", "text/plain"}}, Body: []byte("ok")}), false)
	f.Add(abi.AppendResultOK(nil, &abi.Response{Status: 502}), true)
	f.Add(abi.AppendResultError(nil, "denied"), false)
	f.Fuzz(func(t *testing.T, in []byte, alias bool) {
		var r abi.Response
		if err := abi.DecodeResponse(in, &r, alias); err == nil {
			enc := abi.AppendResponse(nil, &r)
			if !bytes.Equal(enc, in) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", in, enc)
			}
			var again abi.Response
			if err := abi.DecodeResponse(enc, &again, !alias); err != nil {
				t.Fatalf("decode of re-encoding: %v", err)
			}
			if !reflect.DeepEqual(normResponse(again), normResponse(r)) {
				t.Fatalf("round trip: %+v != %+v", again, r)
			}
		}
		// The same bytes as an outbound result: never panics, and a decoded result
		// re-encodes to them.
		var res abi.Response
		msg, err := abi.DecodeResult(in, &res)
		if err != nil {
			return
		}
		var enc []byte
		if in[0] == abi.ResultError {
			enc = abi.AppendResultError(nil, msg)
		} else {
			enc = abi.AppendResultOK(nil, &res)
		}
		if !bytes.Equal(enc, in) {
			t.Fatalf("result re-encoding differs:\n in %x\nout %x", in, enc)
		}
	})
}

// TestDecodeRequestCopies checks that a decoded request survives the guest reusing its
// buffer, and that decoding makes one copy for the strings and one for the body: a wasm
// guest pays for every allocation on every request.
func TestDecodeRequestCopies(t *testing.T) {
	in := abi.Request{Method: "POST", URI: "/p?q=1", Host: "h", RemoteAddr: "r:1",
		Headers: []abi.Header{{"A", "1"}, {"B", "2"}, {"C", "3"}}, Body: []byte("body")}
	enc := abi.AppendRequest(nil, &in)
	var got abi.Request
	if err := abi.DecodeRequest(enc, &got); err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 'x'
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("decoded request changed with its buffer: %+v", got)
	}
	enc = abi.AppendRequest(nil, &in)
	allocs := testing.AllocsPerRun(100, func() {
		if err := abi.DecodeRequest(enc, &got); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 2 {
		t.Fatalf("DecodeRequest made %v allocations, want 2 (head and body)", allocs)
	}
}
