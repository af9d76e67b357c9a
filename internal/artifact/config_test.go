package artifact

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	good := `{"manifest":{"app":{"name":"hello","version":"1.0.0"}},"module":{"digest":"sha256:aa","size":1,"abi":"reactor","imports":[],"exports":[]},"scan":{"capabilities":[],"findings":[]}}`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	app, err := c.App()
	if err != nil || app.App.Name != "hello" || !c.HasApp() {
		t.Fatalf("app %+v, %v", app, err)
	}
	for name, tc := range map[string]struct{ in, want string }{
		"unknown field": {`{"manifest":{},"x":1}`, `unknown field "x"`},
		"trailing data": {good + `{}`, "trailing data"},
		"too large":     {`{"manifest":{},"module":{"exports":["` + strings.Repeat("a", MaxConfigSize) + `"]}}`, "more than"},
		"not JSON":      {`{`, "config"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in))
			if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrBadManifest with %q", err, tc.want)
			}
		})
	}
	for name, in := range map[string]string{"absent": `{}`, "null": `{"manifest":null}`, "string": `{"manifest":"x"}`} {
		t.Run("no app/"+name, func(t *testing.T) {
			c, err := ParseConfig([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if c.HasApp() {
				t.Fatal("HasApp for a config without an app manifest object")
			}
			if _, err := c.App(); err == nil {
				t.Fatal("App decoded a missing manifest")
			}
		})
	}
}
