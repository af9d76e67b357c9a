package cli

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestLocalVersion(t *testing.T) {
	settings := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{}
		for i := 0; i+1 < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name      string
		bi        *debug.BuildInfo
		ok        bool
		buildDate string
		want      versionInfo
	}{
		{name: "no build info", want: versionInfo{}},
		{name: "without vcs", bi: settings("-compiler", "gc"), ok: true, want: versionInfo{}},
		{name: "clean commit", bi: settings("vcs.revision", rev, "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "false"), ok: true,
			want: versionInfo{Commit: rev, Date: "2026-12-01T10:00:00Z", DateSource: "commit"}},
		{name: "modified", bi: settings("vcs.revision", rev, "vcs.modified", "true"), ok: true,
			want: versionInfo{Commit: rev, Modified: true}},
		{name: "link-time date wins", bi: settings("vcs.revision", rev, "vcs.time", "2026-12-01T10:00:00Z"), ok: true, buildDate: "2026-12-06T12:00:00Z",
			want: versionInfo{Commit: rev, Date: "2026-12-06T12:00:00Z", DateSource: "build"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func(d string) { BuildDate = d }(BuildDate)
			BuildDate = tt.buildDate
			got := localVersion(tt.bi, tt.ok)
			tt.want.Version, tt.want.Go, tt.want.Platform = Version, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH
			if got != tt.want {
				t.Fatalf("localVersion = %+v, want %+v", got, tt.want)
			}
		})
	}
}
