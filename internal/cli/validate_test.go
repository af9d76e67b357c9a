package cli

import (
	"net"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/diag"
)

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr string
		want string // in the error; "" for none
	}{
		{addr: ""},
		{addr: ":8080"},
		{addr: "127.0.0.1:0"},
		{addr: "[::1]:9090"},
		{addr: "8080", want: "use :8080 (every interface) or 127.0.0.1:8080"},
		{addr: "localhost", want: "missing port in address; want host:port"},
		{addr: "localhost:http", want: `port "http" is not a number`},
		{addr: "127.0.0.1:70000", want: `port "70000" is not a number from 0 to 65535`},
		{addr: "::1:80", want: "too many colons"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := checkListen("listen", tt.addr)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			case err != nil && !strings.HasPrefix(err.Error(), "--listen "):
				t.Fatalf("err = %v does not name the flag", err)
			}
		})
	}
}

func TestClosest(t *testing.T) {
	words := []string{"zone", "region", "tier"}
	tests := []struct{ word, want string }{
		{"zone", "zone"},
		{"zome", "zone"},
		{"Region", "region"},
		{"regoin", "region"},
		{"rack", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			if got := diag.Closest(tt.word, words); got != tt.want {
				t.Fatalf("Closest(%q) = %q, want %q", tt.word, got, tt.want)
			}
		})
	}
}

// FuzzCheckListen: an address checkListen accepts is one net.Listen can parse.
func FuzzCheckListen(f *testing.F) {
	for _, s := range []string{"", ":8080", "8080", "127.0.0.1:0", "[::1]:1", "a:b:c", "host:-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if checkListen("listen", addr) != nil || addr == "" {
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			t.Fatalf("accepted %q, which net cannot split: %v", addr, err)
		}
	})
}
