package gateway_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"fermion.dev/fermion/internal/gateway"
)

// TestResponseDate: a function's response carries one Date, the gateway's (from the
// guest call's end) unless the guest set its own, which is kept as the guest wrote it
// and sent once. Responses the gateway answers itself carry net/http's.
func TestResponseDate(t *testing.T) {
	e := sharedEngine(t)
	g := gateway.New(gateway.Config{})
	setRoutes(t, g, gateway.Route{Prefix: "/headers", Target: loadGuest(t, e, "internal/gateway/testdata/headers", nil)})
	base := serve(t, g)
	const guestDate = "Tue, 01 Jan 2019 00:00:00 GMT"
	recent := func(t *testing.T, r response) {
		t.Helper()
		dates := r.header.Values("Date")
		if len(dates) != 1 {
			t.Fatalf("Date fields %q, want one", dates)
		}
		at, err := time.Parse(http.TimeFormat, dates[0])
		if err != nil {
			t.Fatalf("Date %q is not in http.TimeFormat: %v", dates[0], err)
		}
		// Generous: the clock and the server's are one, but a busy machine may pause.
		if d := time.Since(at); d < -2*time.Second || d > time.Minute {
			t.Fatalf("Date %q is %s from now", dates[0], -d)
		}
	}
	tests := []struct {
		name    string
		path    string
		headers []string // h=NAME:VALUE the guest sets
		status  int
		check   func(t *testing.T, r response)
	}{
		{name: "the gateway's when the guest sets none", path: "/headers", status: 200, check: recent},
		{name: "the guest's is kept", path: "/headers", headers: []string{"Date:" + guestDate}, status: 200,
			check: func(t *testing.T, r response) {
				if got := r.header.Values("Date"); len(got) != 1 || got[0] != guestDate {
					t.Fatalf("Date fields %q, want only the guest's %q", got, guestDate)
				}
			}},
		{name: "the guest's in lower case is kept", path: "/headers", headers: []string{"date:" + guestDate}, status: 200,
			check: func(t *testing.T, r response) {
				if got := r.header.Values("Date"); len(got) != 1 || got[0] != guestDate {
					t.Fatalf("Date fields %q, want only the guest's %q", got, guestDate)
				}
			}},
		{name: "one of the guest's two is sent", path: "/headers", headers: []string{"Date:" + guestDate, "date:" + guestDate, "DATE:Wed, 02 Jan 2019 00:00:00 GMT"}, status: 200,
			check: func(t *testing.T, r response) {
				got := r.header.Values("Date")
				if len(got) != 1 || (got[0] != guestDate && got[0] != "Wed, 02 Jan 2019 00:00:00 GMT") {
					t.Fatalf("Date fields %q, want one of the guest's", got)
				}
			}},
		{name: "no route: net/http's", path: "/nothing", status: 404, check: recent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"h": tt.headers}
			r := get(t, base+tt.path+"?"+q.Encode(), nil)
			if r.status != tt.status {
				t.Fatalf("GET %s = %d %q, want %d", tt.path, r.status, r.body, tt.status)
			}
			tt.check(t, r)
		})
	}
}
