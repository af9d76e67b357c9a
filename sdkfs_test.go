package fermion

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSDKComplete checks that SDK embeds every source file of the guest SDK's packages
// and nothing else, so a scaffolded function builds with whichever API it uses.
func TestSDKComplete(t *testing.T) {
	var want []string
	for _, root := range []string{"api/abi", "sdk"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			want = append(want, filepath.ToSlash(path))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := fs.WalkDir(SDK, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, path)
			b, rerr := SDK.ReadFile(path)
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
		t.Fatalf("embedded SDK files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
