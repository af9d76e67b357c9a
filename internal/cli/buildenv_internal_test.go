package cli

import (
	"strings"
	"testing"
)

func TestReproducibleGoFlags(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "-trimpath -buildvcs=false"},
		{"others kept", "-mod=mod  -tags=netgo", "-mod=mod -tags=netgo -trimpath -buildvcs=false"},
		{"buildvcs asked for", "-buildvcs=true", "-buildvcs=true -trimpath"},
		{"trimpath turned off", "--trimpath=false", "--trimpath=false -buildvcs=false"},
		{"both there", "-trimpath -buildvcs=auto", "-trimpath -buildvcs=auto"},
		{"a flag that only starts alike", "-trimpathx", "-trimpathx -trimpath -buildvcs=false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reproducibleGoFlags(tt.in); got != tt.want {
				t.Errorf("reproducibleGoFlags(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestBuildEnvGOFLAGS: the build command's GOFLAGS, the last one in its environment
// (the one exec and the shell use), extends the manifest's value, else the process's.
func TestBuildEnvGOFLAGS(t *testing.T) {
	tests := []struct {
		name     string
		process  string // "" unset
		manifest map[string]string
		want     string
	}{
		{"neither", "", map[string]string{"GOOS": "wasip1"}, "-trimpath -buildvcs=false"},
		{"the process's", "-mod=mod", nil, "-mod=mod -trimpath -buildvcs=false"},
		{"the manifest's wins", "-mod=mod", map[string]string{"GOFLAGS": "-buildvcs=true"}, "-buildvcs=true -trimpath"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOFLAGS", tt.process)
			got := ""
			for _, kv := range buildEnv(tt.manifest) {
				if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
					got = v
				}
			}
			if got != tt.want {
				t.Errorf("GOFLAGS=%q, want %q", got, tt.want)
			}
		})
	}
}
