package policy

import "testing"

// TestArtifactConfigSLOs: the manifest's [[slo]] tables (an array, as it normalises
// them) reach policies as a map by SLO name; anything else is refused by the one
// decoder of the format (manifest.ParseNormalized).
func TestArtifactConfigSLOs(t *testing.T) {
	for _, tc := range []struct {
		name, slo string
		want      int
		check     func(map[string]any) bool
	}{
		{"tables", `[{"name":"availability","sli":"availability","objective":99.9,"scope":"node"}]`, 1,
			func(m map[string]any) bool { return m["availability"].(map[string]any)["objective"] == 99.9 }},
		{"none", `null`, 0, nil},
		{"empty tables", `[]`, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseArtifactConfig([]byte(`{"manifest":{"app":{"name":"hello","version":"1.0.0"},"slo":` + tc.slo + `},"module":{"size":1,"abi":"reactor"}}`))
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Manifest.SLO) != tc.want || tc.check != nil && !tc.check(cfg.Manifest.SLO) {
				t.Errorf("manifest.slo = %#v", cfg.Manifest.SLO)
			}
			if tc.want == 0 && cfg.Manifest.SLO != nil {
				t.Errorf("manifest.slo = %#v, want nil (has() is false)", cfg.Manifest.SLO)
			}
		})
	}
}

func TestArtifactConfigSLOMapRefused(t *testing.T) {
	_, err := ParseArtifactConfig([]byte(`{"manifest":{"app":{"name":"hello","version":"1.0.0"},"slo":{"availability":0.999}},"module":{"size":1,"abi":"reactor"}}`))
	if err == nil {
		t.Fatal("a map for slo was accepted; want the manifest decoder's error")
	}
}
