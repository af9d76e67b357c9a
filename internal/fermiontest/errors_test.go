package fermiontest

import "testing"

func TestRepeatedContext(t *testing.T) {
	for _, tt := range []struct{ msg, want string }{
		{"create token: store token: write token.ab: nats: timeout (unavailable)", ""},
		{"create token: create token: nats: timeout", "create token"},
		{"push a/b:1: push manifest a/b:1: denied", ""},
		{"push a/b:1: push a/b:1: denied", "push a/b:1"},
		{"verify x: no signature\nverify x: with another key", ""},
		{"", ""},
	} {
		if got := RepeatedContext(tt.msg); got != tt.want {
			t.Errorf("RepeatedContext(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}
