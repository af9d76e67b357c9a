package registry

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestCatalogSlice(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	for _, c := range []struct {
		name string
		last string
		n    int
		want []string
		more bool
	}{
		{"all", "", 10, names, false},
		{"first page", "", 2, []string{"a", "b"}, true},
		{"exact fit", "", 4, names, false},
		{"after last", "b", 2, []string{"c", "d"}, false},
		{"last not present", "bb", 1, []string{"c"}, true},
		{"last past the end", "z", 5, []string{}, false},
		{"zero", "", 0, []string{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, more := catalogSlice(names, c.last, c.n)
			if !slices.Equal(got, c.want) || more != c.more {
				t.Fatalf("catalogSlice(last=%q, n=%d) = %v, %v; want %v, %v", c.last, c.n, got, more, c.want, c.more)
			}
		})
	}
}

// catalogPageOf fetches one page and returns its repositories and the next page's path.
func catalogPageOf(t *testing.T, tr *testRegistry, path string) ([]string, string) {
	t.Helper()
	resp := tr.do(t, "GET", path, nil).want(t, http.StatusOK)
	var body struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || body.Repositories == nil {
		t.Fatalf("catalog body %s: %v", resp.body, err)
	}
	next := ""
	if link := resp.header.Get("Link"); link != "" {
		m := regexp.MustCompile(`^<([^>]+)>; rel="next"$`).FindStringSubmatch(link)
		if m == nil {
			t.Fatalf("Link %q is not <url>; rel=\"next\"", link)
		}
		next = m[1]
	}
	return body.Repositories, next
}

func TestCatalog(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	catalogPageOf(t, tr, "/v2/_catalog") // empty registry: an empty list, not an error
	want := []string{"a/b", "a/b.c", "blobs-only", "m", "x-y/z_w"}
	for _, repo := range want {
		if repo == "blobs-only" {
			tr.pushBlob(t, repo, []byte("b"))
			continue
		}
		img := tr.newImage(t, repo, repo, nil)
		tr.putManifest(t, repo, "v1", img.body).want(t, http.StatusCreated)
	}
	if got, next := catalogPageOf(t, tr, "/v2/_catalog"); !slices.Equal(got, want) || next != "" {
		t.Fatalf("catalog %v (next %q), want %v", got, next, want)
	}
	// Pages of two, following the Link headers.
	var all []string
	pages := 0
	for path := "/v2/_catalog?n=2"; path != ""; pages++ {
		var got []string
		got, path = catalogPageOf(t, tr, path)
		if len(got) > 2 {
			t.Fatalf("page of %d with n=2", len(got))
		}
		all = append(all, got...)
	}
	if !slices.Equal(all, want) || pages != 3 {
		t.Fatalf("paged catalog %v in %d pages, want %v in 3", all, pages, want)
	}
	if got, _ := catalogPageOf(t, tr, "/v2/_catalog?n=2&last=a/b.c"); !slices.Equal(got, []string{"blobs-only", "m"}) {
		t.Fatalf("page after a/b.c: %v", got)
	}
	tr.do(t, "GET", "/v2/_catalog?n=-1", nil).wantError(t, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	tr.do(t, "GET", "/v2/_catalog?last=UPPER", nil).wantError(t, http.StatusBadRequest, codeNameInvalid)
	tr.do(t, "DELETE", "/v2/_catalog", nil).wantError(t, http.StatusMethodNotAllowed, codeUnsupported)

	// Reads need a pull token when pull tokens are set, the catalog too.
	tp := startRegistry(t, "", Config{PullTokens: []string{testPullToken}})
	tp.do(t, "GET", "/v2/_catalog", nil, "Authorization", "").wantError(t, http.StatusUnauthorized, codeUnauthorized)
}

// thirdParty runs a client CLI found on PATH against tr, with a throwaway HOME.
func thirdParty(t *testing.T, tool string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not on PATH (.ci/run installs it)", tool)
	}
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// catalogFixture is a registry holding more repositories than one page of n=2.
func catalogFixture(t *testing.T) (*testRegistry, []string) {
	tr := startRegistry(t, "", Config{})
	repos := []string{"fermion/a", "fermion/b", "fermion/c", "other"}
	for _, repo := range repos {
		img := tr.newImage(t, repo, repo, nil)
		tr.putManifest(t, repo, "1.0.0", img.body).want(t, http.StatusCreated)
	}
	return tr, repos
}

func lines(s string) []string { return strings.Fields(s) }

// TestCatalogOras lists repositories with oras repo ls, which follows the Link pages.
func TestCatalogOras(t *testing.T) {
	if _, err := exec.LookPath("oras"); err != nil {
		t.Skip("oras is not on PATH (.ci/run installs it)")
	}
	tr, repos := catalogFixture(t)
	host := strings.TrimPrefix(tr.srv.URL, "http://")
	out := thirdParty(t, "oras", "repo", "ls", host, "--plain-http", "--last", "")
	if got := lines(out); !slices.Equal(got, repos) {
		t.Fatalf("oras repo ls: %q, want %v", out, repos)
	}
	// A namespace lists what is under it, relative to it.
	out = thirdParty(t, "oras", "repo", "ls", host+"/fermion", "--plain-http")
	if got := lines(out); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("oras repo ls fermion: %q", out)
	}
}

// TestCatalogCrane lists repositories with crane catalog, which follows the Link pages.
func TestCatalogCrane(t *testing.T) {
	if _, err := exec.LookPath("crane"); err != nil {
		t.Skip("crane is not on PATH (.ci/run installs it)")
	}
	tr, repos := catalogFixture(t)
	host := strings.TrimPrefix(tr.srv.URL, "http://")
	out := thirdParty(t, "crane", "catalog", host, "--insecure")
	if got := lines(out); !slices.Equal(got, repos) {
		t.Fatalf("crane catalog: %q, want %v", out, repos)
	}
}
