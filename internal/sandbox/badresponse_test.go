package sandbox_test

import (
	"net/http"
	"testing"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/telemetry"
)

// TestReactorBadResponseReasons: a reactor's malformed response is counted by what was
// wrong with it, besides its 502.
func TestReactorBadResponseReasons(t *testing.T) {
	badStatus := abi.AppendResponse(nil, &abi.Response{Status: 42})
	tests := []struct {
		name   string
		guest  rawGuest
		reason string
	}{
		{name: "undecodable", guest: rawGuest{handle: cat(i32(rawResp), i32(3), call(fnResponse), i32(0))}.withResponse(rawOK), reason: telemetry.BadResponseEncoding},
		{name: "invalid status", guest: rawGuest{handle: respond(badStatus)}.withResponse(badStatus), reason: telemetry.BadResponseStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			f := load(t, e, rawSpec(tt.guest))
			resp, err := invoke(t, f, get("/"))
			wantError(t, resp, err, http.StatusBadGateway, telemetry.ReasonBadResponse)
			for _, r := range telemetry.BadResponseReasons {
				want := 0.0
				if r == tt.reason {
					want = 1
				}
				wantMetric(t, "bad responses ("+r+")", toFloat64(m.BadResponses.WithLabelValues("raw", version, r)), want)
			}
		})
	}
}
