package fermion

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRustSDKComplete checks that RustSDK embeds the Rust SDK's manifest, README and
// every source file, byte for byte, so a scaffolded Rust function builds offline.
func TestRustSDKComplete(t *testing.T) {
	want := []string{"sdk/rust/Cargo.toml", "sdk/rust/build.rs", "sdk/rust/README.md"}
	err := filepath.WalkDir("sdk/rust/src", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".rs") {
			want = append(want, filepath.ToSlash(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = fs.WalkDir(RustSDK, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, path)
			b, rerr := RustSDK.ReadFile(path)
			disk, derr := os.ReadFile(path)
			if rerr != nil || derr != nil || string(b) != string(disk) {
				t.Errorf("%s: embedded copy differs from the file (%v, %v)", path, rerr, derr)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("RustSDK embeds %v, want %v; update the go:embed line in sdkfs_rust.go", got, want)
	}
}
