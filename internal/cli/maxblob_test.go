package cli

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMaxBlobSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  string
	}{
		{"2GiB", 2 << 30, ""},
		{"512MiB", 512 << 20, ""},
		{"1048576", 1 << 20, ""},
		{"0", 0, "more than 0"},
		{"lots", 0, "not a size"},
		{"-1GiB", 0, "--max-blob-size"},
	} {
		t.Run(c.in, func(t *testing.T) {
			n, err := parseMaxBlobSize("--max-blob-size", c.in)
			if c.err == "" {
				if err != nil || n != c.want {
					t.Fatalf("= %d, %v; want %d", n, err, c.want)
				}
				return
			}
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.As(err, &ue) {
				t.Fatalf("= %d, %v; want a usage error saying %q", n, err, c.err)
			}
		})
	}
}
