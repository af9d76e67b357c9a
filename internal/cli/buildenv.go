package cli

import (
	"os"
	"strings"
)

// reproducibleFlags are the go flags `fermion build` (and deploy, push, run, up) adds to
// every build command through GOFLAGS, so that the same sources and toolchain give the
// same module wherever and from whatever checkout they are built:
//
//   - -trimpath: no absolute path of the build directory, the module cache or GOROOT
//     in the module (panics and runtime.Caller name module paths instead);
//   - -buildvcs=false: no commit, commit time or "modified" flag in the module's build
//     info, which otherwise differ between a dirty tree and a clean clone of one commit.
//     The commit is recorded outside the module, in the artifact's annotations.
//
// See docs/RATIONALE.md, "Why does fermion build pass -trimpath and -buildvcs=false?".
var reproducibleFlags = []struct{ name, flag string }{
	{"trimpath", "-trimpath"},
	{"buildvcs", "-buildvcs=false"},
}

// reproducibleGoFlags returns goflags with each reproducibleFlags entry added unless
// goflags already sets that flag, whatever its value: a build that asks for
// -buildvcs=true or -trimpath=false gets what it asked for.
func reproducibleGoFlags(goflags string) string {
	fields := strings.Fields(goflags)
	set := map[string]bool{}
	for _, f := range fields {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		set[name] = true
	}
	for _, r := range reproducibleFlags {
		if !set[r.name] {
			fields = append(fields, r.flag)
		}
	}
	return strings.Join(fields, " ")
}

// buildEnv is the environment a manifest's build command runs with: this process's,
// then the manifest's [component.build] env, then GOFLAGS with reproducibleFlags added
// to the value those two give it (the manifest's wins). Go ignores GOFLAGS entries a
// command does not know, and other toolchains ignore GOFLAGS.
func buildEnv(manifestEnv map[string]string) []string {
	env := os.Environ()
	goflags, _ := os.LookupEnv("GOFLAGS")
	for k, v := range manifestEnv {
		env = append(env, k+"="+v)
		if k == "GOFLAGS" {
			goflags = v
		}
	}
	return append(env, "GOFLAGS="+reproducibleGoFlags(goflags))
}
