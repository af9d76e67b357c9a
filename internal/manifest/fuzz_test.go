package manifest

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// satisfies the invariants the sandbox and gateway rely on.
func FuzzParse(f *testing.F) {
	seeds := []string{
		fullManifest,
		minimalManifest,
		"",
		"manifest_version = 1\n[app]\nname = hello\n",
		minimalManifest + "[limits]\nmemory = \"64 megs\"\ntimeout = \"16m\"\n",
		minimalManifest + "[scaling]\nmin_warm = 9\nmax_instances = 2\n",
		minimalManifest + "[scaling]\ntarget_utilization_percentage = 0\n",
		minimalManifest + "[capabilities]\nallowed_outbound_hosts = [\"https://u@h/p\", \"http://[::1]:*\", \"*://*.x.y\"]\n",
		minimalManifest + "[capabilities]\nfiles = [{ source = \"../x\", destination = \"y\" }, { source = \"a\", destination = \"/a\" }]\n",
		minimalManifest + "[[routes]]\npath = \"/\"\n[[routes]]\nhost = \"*.EXAMPLE.com\"\npath = \"/a\"\n",
		minimalManifest + "[component.build]\ncommand = \"make\"\nworkdir = \"..\"\nenv = { \"1\" = 2 }\n",
		"manifest_version = 1\napp = { name = \"a\", version = \"1.0.0\", labels = { \"x/y\" = \"z\" } }\ncomponent.source = \"a.wasm\"\nroutes = [{ path = \"/\" }]\nlimits.memory = 65537\n",
		"a = \"\"\"\nmulti ] } [\n\"\"\"\n[[b.c]]\n'd.e' = { f = [1, [2, {g = 3}]] }\n",
		"[app]\nname = \"x\\u00e9\"\n\"quoted key\" = 1\n",
		minimalManifest + "[[slo]]\nname = \"availability\"\nsli = \"availability\"\nobjective = 99.9\nscope = \"node\"\nnodes = { role = \"edge\" }\n",
		minimalManifest + "[[slo]]\nname = \"l\"\nsli = \"latency\"\nthreshold = \"250ms\"\nobjective = 99\n[[slo]]\nname = \"l\"\nobjective = \"x\"\nslo = 1\n",
		minimalManifest + "slo = [1, \"a\"]\n",
		"manifest_version = 1\n[app]\nname = \"a\"\nversion = \"1.0.0\"\n[component]\nsource = \"a.wasm\"\nwarmup = \"/w?x=1\"\nwarmup_timeout = \"9ms\"\n[[routes]]\npath = \"/\"\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), "/srv/app")
	}
	f.Fuzz(func(t *testing.T, data []byte, dir string) {
		if strings.ContainsRune(dir, 0) {
			dir = ""
		}
		m, err := Parse("fuzz.toml", data, dir)
		if err != nil {
			var merr *Error
			if !errors.As(err, &merr) || len(merr.Problems) == 0 {
				t.Fatalf("error is not a non-empty *Error: %T %v", err, err)
			}
			for _, p := range merr.Problems {
				if p.File != "fuzz.toml" || p.Msg == "" {
					t.Fatalf("problem without file or message: %+v", p)
				}
				// Anything but an absent key is written somewhere, so the key
				// scanner must have found its line.
				if p.Field != "" && p.Line == 0 && !strings.HasPrefix(p.Msg, "required") {
					t.Fatalf("no line for a present field: %+v", p)
				}
			}
			_ = err.Error()
			return
		}
		if m == nil {
			t.Fatal("nil manifest without error")
		}
		a, err := m.Normalize()
		if err != nil {
			t.Fatalf("Normalize failed on an accepted manifest: %v", err)
		}
		b, err := m.Normalize()
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("Normalize not deterministic")
		}
		s, l := m.Scaling, m.Limits
		switch {
		case m.ManifestVersion != 1:
			t.Fatalf("ManifestVersion = %d", m.ManifestVersion)
		case !nameRE.MatchString(m.App.Name) || !semverRE.MatchString(m.App.Version):
			t.Fatalf("bad identity %q", m.ID())
		case m.Component.Source == "":
			t.Fatal("empty source")
		case len(m.Routes) == 0:
			t.Fatal("no routes")
		case s.MinWarm < 0 || s.MinWarm > s.MaxInstances || s.MaxInstances < 1 || s.MaxInstances > maxInstances:
			t.Fatalf("bad scaling %+v", s)
		case s.IdleTimeout <= 0 || s.MaxRequestsPerInstance < 0:
			t.Fatalf("bad scaling %+v", s)
		case l.MaxConcurrency < 1:
			t.Fatalf("MaxConcurrency = %d", l.MaxConcurrency)
		case l.MemoryBytes%wasmPageSize != 0 || l.MemoryBytes < minMemory || l.MemoryBytes > maxMemory:
			t.Fatalf("MemoryBytes = %d", l.MemoryBytes)
		case l.Timeout <= 0 || l.Timeout > maxTimeout || l.QueueTimeout < 0:
			t.Fatalf("bad timeouts %+v", l)
		case l.MaxRequestBody < 0 || l.MaxResponseBody <= 0:
			t.Fatalf("bad body limits %+v", l)
		case m.Capabilities.OutboundTimeout <= 0:
			t.Fatalf("OutboundTimeout = %v", m.Capabilities.OutboundTimeout)
		}
		for _, r := range m.Routes {
			if !strings.HasPrefix(r.Path, "/") {
				t.Fatalf("route path %q", r.Path)
			}
		}
		for _, p := range m.Capabilities.AllowedOutboundHosts {
			// Every accepted pattern must re-parse to itself (it is stored
			// in the OCI config as its string).
			q, err := ParseHostPattern(p.String())
			if err != nil || q != p {
				t.Fatalf("pattern %q does not re-parse: %v", p, err)
			}
		}
		for _, mnt := range m.Capabilities.Files {
			if !strings.HasPrefix(mnt.Destination, "/") {
				t.Fatalf("mount destination %q", mnt.Destination)
			}
		}
		// Normalize must be independent of where the project lives.
		m2, err := Parse("fuzz.toml", data, "")
		if err != nil {
			t.Fatalf("accepted with dir %q but rejected without: %v", dir, err)
		}
		c, err := m2.Normalize()
		if err != nil || !bytes.Equal(a, c) {
			t.Fatalf("Normalize depends on dir:\n%s\n%s", a, c)
		}
	})
}

// FuzzHostPattern checks the matcher never panics and that wildcard-free
// patterns never allow a different host.
func FuzzHostPattern(f *testing.F) {
	for _, s := range []string{"https://api.example.com", "http://127.0.0.1:*", "*://*.example.org:8443", "http://[::1]:80", "https://*"} {
		f.Add(s, "https://api.example.com:443/x")
	}
	f.Fuzz(func(t *testing.T, pattern, rawURL string) {
		p, err := ParseHostPattern(pattern)
		if err != nil {
			return
		}
		u, err := url.Parse(rawURL)
		if err != nil {
			return
		}
		_ = p.Allows(u)
	})
}
