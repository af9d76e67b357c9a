package guest

import (
	"fmt"
	"io"

	"fermion.dev/fermion/api/abi"
)

// Do sends an outbound request through the host and returns its response. body, if not
// nil, is read into req.Body and closed. redacted is the destination as errors name it
// (a URL without its password).
func Do(req *abi.Request, body io.ReadCloser, redacted string) (*abi.Response, error) {
	if body != nil {
		b, err := io.ReadAll(body)
		body.Close()
		if err != nil {
			return nil, fmt.Errorf("read outbound request body: %w", err)
		}
		req.Body = b
	}
	result, err := Send(abi.AppendRequest(nil, req))
	if err != nil {
		return nil, err
	}
	var r abi.Response
	msg, err := abi.DecodeResult(result, &r)
	if err != nil {
		return nil, fmt.Errorf("decode outbound response: %w", err)
	}
	if msg != "" {
		return nil, fmt.Errorf("outbound %s %s: %s", req.Method, redacted, msg)
	}
	return &r, nil
}
