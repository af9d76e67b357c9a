package guest

import (
	"net/url"
	"testing"
)

func TestParseURI(t *testing.T) {
	for _, uri := range []string{"/", "/a/b", "/a?b=c&d", "/a%20b?x", "//host/p", "/a;b", "/a?b;c", "/a#frag", "*", "", "rel"} {
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
}
