package guest

import (
	"fmt"

	"fermion.dev/fermion/api/abi"
)

// Do sends an outbound request through the host and returns its response. redacted is
// the destination as errors name it (a URL without its password).
func Do(req *abi.Request, redacted string) (*abi.Response, error) {
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
