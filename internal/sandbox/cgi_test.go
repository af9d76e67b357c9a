package sandbox_test

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

func TestParseCGI(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantStatus int
		wantHeader http.Header
		wantBody   string
		wantErr    string
		wantReason string // the telemetry.BadResponse* of the error
	}{
		{name: "content type", in: "Content-Type: text/plain\n\nhello", wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}}, wantBody: "hello"},
		{name: "crlf", in: "Content-Type: text/plain\r\nX-A: 1\r\n\r\nbody\r\n\r\nmore", wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}, "X-A": {"1"}}, wantBody: "body\r\n\r\nmore"},
		{name: "status with reason", in: "Status: 404 Not Found\nContent-Type: text/plain\n\nnope", wantStatus: 404,
			wantHeader: http.Header{"Content-Type": {"text/plain"}}, wantBody: "nope"},
		{name: "status only", in: "status: 204\n\n", wantStatus: 204, wantHeader: http.Header{}},
		{name: "location", in: "Location: /elsewhere\n\n", wantStatus: 302,
			wantHeader: http.Header{"Location": {"/elsewhere"}}},
		{name: "repeated header", in: "Content-Type: a\nSet-Cookie: x=1\nSet-Cookie: y=2\n\n", wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"a"}, "Set-Cookie": {"x=1", "y=2"}}},
		{name: "empty body", in: "Content-Type: text/plain\n\n", wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}}},
		{name: "empty", in: "", wantErr: "empty output", wantReason: telemetry.BadResponseEmpty},
		{name: "no blank line", in: "Content-Type: text/plain\nbody", wantErr: "no blank line", wantReason: telemetry.BadResponseNoHeaderEnd},
		{name: "no colon", in: "garbage without colon\n\nbody", wantErr: "has no colon", wantReason: telemetry.BadResponseHeaderSyntax},
		{name: "bad name", in: "Bad Name: x\n\n", wantErr: "invalid header name", wantReason: telemetry.BadResponseHeaderSyntax},
		{name: "empty name", in: ": x\n\n", wantErr: "invalid header name", wantReason: telemetry.BadResponseHeaderSyntax},
		{name: "bad status", in: "Status: abc\nContent-Type: a\n\n", wantErr: "invalid Status", wantReason: telemetry.BadResponseStatus},
		{name: "status out of range", in: "Status: 99\n\n", wantErr: "invalid Status", wantReason: telemetry.BadResponseStatus},
		{name: "status too big", in: "Status: 1000\n\n", wantErr: "invalid Status", wantReason: telemetry.BadResponseStatus},
		{name: "no type", in: "X-A: 1\n\nbody", wantErr: "no Content-Type", wantReason: telemetry.BadResponseNoContentType},
		{name: "nul in value", in: "Content-Type: a\x00b\n\n", wantErr: "invalid characters", wantReason: telemetry.BadResponseHeaderSyntax},
		{name: "cr in value", in: "Content-Type: a\rb\n\n", wantErr: "invalid characters", wantReason: telemetry.BadResponseHeaderSyntax},
		{name: "huge header", in: "Content-Type: " + strings.Repeat("a", 70<<10) + "\n\n", wantErr: "exceeds", wantReason: telemetry.BadResponseHeaderTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, header, body, err := sandbox.ParseCGI([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				var ce *sandbox.CGIError
				if !errors.As(err, &ce) || ce.Reason != tt.wantReason || sandbox.BadResponseReason(err) != tt.wantReason {
					t.Fatalf("err %v: reason %q, want %q", err, sandbox.BadResponseReason(err), tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.wantStatus || string(body) != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
			if len(header) != len(tt.wantHeader) {
				t.Fatalf("header %v, want %v", header, tt.wantHeader)
			}
			for k, v := range tt.wantHeader {
				if strings.Join(header[k], "|") != strings.Join(v, "|") {
					t.Fatalf("header %v, want %v", header, tt.wantHeader)
				}
			}
		})
	}
}

func FuzzParseCGI(f *testing.F) {
	for _, seed := range []string{
		"Content-Type: text/plain\n\nhello",
		"Content-Type: text/plain\r\n\r\nhello",
		"Status: 404 Not Found\r\nContent-Type: text/html\r\nX-A: b\r\n\r\n<p>",
		"Location: /x\n\n",
		"status: 204\n\n",
		"garbage without colon\n\nbody",
		"Content-Type: a\n",
		"\n\n",
		"\r\n\r\n",
		"Status: 99999999999999999999\n\n",
		"Status: -1\n\n",
		"Content-Type: \xff\xfe\n\n\x00",
		"A:\n\r\n\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := append([]byte(nil), in...)
		status, header, body, err := sandbox.ParseCGI(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("ParseCGI modified its input")
		}
		if err != nil {
			if status != 0 || header != nil || body != nil {
				t.Fatalf("error %v with results %d %v %q", err, status, header, body)
			}
			if r := sandbox.BadResponseReason(err); !slices.Contains(telemetry.BadResponseReasons, r) {
				t.Fatalf("error %v has reason %q, not one of %v", err, r, telemetry.BadResponseReasons)
			}
			return
		}
		if status < 100 || status > 999 {
			t.Fatalf("status %d", status)
		}
		if !bytes.HasSuffix(in, body) {
			t.Fatalf("body %q is not a suffix of the input", body)
		}
		if header == nil {
			t.Fatal("nil header")
		}
		for k, vs := range header {
			if k == "" || strings.ContainsAny(k, " \t\r\n:") {
				t.Fatalf("header name %q", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header %s value %q", k, v)
				}
			}
		}
		if header.Get("Content-Type") == "" && header.Get("Location") == "" && status == 200 && !bytes.Contains(bytes.ToLower(in), []byte("status")) {
			t.Fatalf("status 200 without Content-Type, Location or Status: %q", in)
		}
	})
}
