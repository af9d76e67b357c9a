package manifest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestParseNormalizedRoundTrip decodes Normalize's output and encodes it again: the
// typed form loses nothing of what the config carries.
func TestParseNormalizedRoundTrip(t *testing.T) {
	for name, src := range map[string]string{"full": fullManifest, "minimal": minimalManifest} {
		t.Run(name, func(t *testing.T) {
			m := mustParse(t, src, "/srv/hello")
			norm, err := m.Normalize()
			if err != nil {
				t.Fatal(err)
			}
			n, err := ParseNormalized(norm)
			if err != nil {
				t.Fatal(err)
			}
			if n.App.Name != m.App.Name || n.Limits.Memory != m.Limits.MemoryBytes || n.Scaling.MaxInstances != m.Scaling.MaxInstances || len(n.Routes) != len(m.Routes) {
				t.Fatalf("decoded %+v from %s", n, norm)
			}
			again, err := json.Marshal(n)
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			json.Unmarshal(norm, &a)
			json.Unmarshal(again, &b)
			x, _ := json.Marshal(a)
			y, _ := json.Marshal(b)
			if !bytes.Equal(x, y) {
				t.Fatalf("round trip changed the manifest:\n%s\n%s", x, y)
			}
		})
	}
}

func TestParseNormalizedRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"empty":           {"", "not a JSON object"},
		"null":            {"null", "not a JSON object"},
		"array":           {"[]", "not a JSON object"},
		"wrong type":      {`{"limits":{"memory":"64MiB"}}`, "read the app manifest"},
		"bad host":        {`{"capabilities":{"allowed_outbound_hosts":["ftp://x"]}}`, "read the app manifest"},
		"trailing junk":   {`{} {`, "read the app manifest"},
		"unknown is fine": {`{"app":{"name":"a"},"future":1}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseNormalized([]byte(tc.in))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzParseNormalized checks that no config manifest, however broken, panics the
// decoder, and that what it accepts encodes again.
func FuzzParseNormalized(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `{"app":{"name":"a","labels":{"x":"y"}},"routes":[{"path":"/"}]}`,
		`{"limits":{"memory":18446744073709551615}}`, `{"capabilities":{"allowed_outbound_hosts":["https://*.x.y:*"]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseNormalized(data)
		if err != nil {
			return
		}
		if _, err := json.Marshal(n); err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", data, err)
		}
	})
}
