package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"fermion.dev/fermion/internal/telemetry"
)

// maxCGIHeader bounds the header section of a command module's output.
const maxCGIHeader = 64 << 10

// CGIError is a malformed CGI response. Reason, one of telemetry.BadResponse*, is what
// fermion_bad_responses_total counts; the message says which line and what is wrong.
type CGIError struct {
	Reason string
	msg    string
}

func (e *CGIError) Error() string { return e.msg }

func cgiError(reason, format string, args ...any) *CGIError {
	return &CGIError{Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// BadResponseReason is the telemetry.BadResponse* reason of a ParseCGI error
// (header_syntax for an error ParseCGI did not make).
func BadResponseReason(err error) string {
	var ce *CGIError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return telemetry.BadResponseHeaderSyntax
}

// ParseCGI splits a CGI 1.1 response (RFC 3875 §6) into status, header and body. The
// header block ends at the first empty line (LF or CRLF). A "Status" header sets the
// status; a "Location" without one means 302; otherwise 200. At least one of
// Content-Type, Location or Status must be present, as the RFC requires. Errors are
// *CGIError.
func ParseCGI(out []byte) (status int, header http.Header, body []byte, err error) {
	end, sep := -1, 0
	if i := bytes.Index(out, []byte("\r\n\r\n")); i >= 0 {
		end, sep = i, 4
	}
	if i := bytes.Index(out, []byte("\n\n")); i >= 0 && (end < 0 || i < end) {
		end, sep = i, 2
	}
	if end < 0 {
		if len(out) == 0 {
			return 0, nil, nil, cgiError(telemetry.BadResponseEmpty, "empty output: a CGI response starts with headers such as \"Content-Type: text/plain\" and a blank line")
		}
		return 0, nil, nil, cgiError(telemetry.BadResponseNoHeaderEnd, "no blank line after the headers")
	}
	if end > maxCGIHeader {
		return 0, nil, nil, cgiError(telemetry.BadResponseHeaderTooLarge, "header section exceeds %d bytes", maxCGIHeader)
	}
	header = make(http.Header)
	status = 0
	for n, line := range strings.Split(string(out[:end]), "\n") {
		line = strings.TrimSuffix(line, "\r")
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return 0, nil, nil, cgiError(telemetry.BadResponseHeaderSyntax, "header line %d %q has no colon", n+1, truncate(line, 40))
		}
		if !validHeaderName(name) {
			return 0, nil, nil, cgiError(telemetry.BadResponseHeaderSyntax, "header line %d: invalid header name %q", n+1, truncate(name, 40))
		}
		value = strings.TrimSpace(value)
		if strings.ContainsAny(value, "\r\n\x00") {
			return 0, nil, nil, cgiError(telemetry.BadResponseHeaderSyntax, "header line %d: invalid characters in value", n+1)
		}
		if strings.EqualFold(name, "Status") {
			code, _, _ := strings.Cut(value, " ")
			s, err := strconv.Atoi(code)
			if err != nil || s < 100 || s > 999 {
				return 0, nil, nil, cgiError(telemetry.BadResponseStatus, "header line %d: invalid Status %q", n+1, truncate(value, 40))
			}
			status = s
			continue
		}
		header.Add(name, value)
	}
	if status == 0 {
		if header.Get("Location") != "" {
			status = http.StatusFound
		} else if header.Get("Content-Type") != "" {
			status = http.StatusOK
		} else {
			return 0, nil, nil, cgiError(telemetry.BadResponseNoContentType, "no Content-Type, Location or Status header")
		}
	}
	return status, header, out[end+sep:], nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
