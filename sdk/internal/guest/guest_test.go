package guest

import (
	"net/url"
	"testing"
)

func TestParseURI(t *testing.T) {
	for _, uri := range []string{"/", "/a/b", "/a?b=c&d", "/a%20b?x", "//host/p", "/a;b", "/a?b;c", "/a#frag", "*", "", "rel",
		"/a?b?c", "/a b", "/ä", "/a?%41", "/a?#"} {
		checkParseURI(t, uri)
	}
	// Plain paths and queries take the fast path, which allocates nothing (natively,
	// url.ParseRequestURI allocates its URL).
	for _, uri := range []string{"/", "/hello", "/a/b?x=1&y=2", "/a?b;c!", "/a?b?c", "/~user/x.y_z-1", "/$&+,:=@"} {
		var u url.URL
		if n := testing.AllocsPerRun(10, func() { ParseURI(uri, &u) }); n != 0 {
			t.Errorf("%q: %v allocations, want the fast path's none", uri, n)
		}
	}
}

func checkParseURI(t *testing.T, uri string) {
	t.Helper()
	std, err := url.ParseRequestURI(uri)
	var got url.URL
	gotErr := ParseURI(uri, &got)
	if (err != nil) != (gotErr != nil) {
		t.Fatalf("%q: err %v, url.ParseRequestURI: %v", uri, gotErr, err)
	}
	if err == nil && got != *std {
		t.Fatalf("%q: %+v, url.ParseRequestURI: %+v", uri, got, *std)
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"/a?b;c", "/a;b", "//x", "/%zz", "/a?b#c", "/!", "/a?", "/a??"} {
		f.Add(s)
	}
	f.Fuzz(checkParseURI)
}
