package v1_test

import (
	"encoding/json"
	"strings"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
)

func canaryAssignment(edit func(a *v1.Assignment)) v1.Assignment {
	a := v1.Assignment{
		Deployment: "hello",
		Version:    v1.Version{App: "hello", Version: "1.0.0", Digest: "sha256:aaa", Routes: []string{"/hello", "api.example.com/v1"}},
		Canary: &v1.Canary{
			Version: v1.Version{App: "hello", Version: "2.0.0", Digest: "sha256:bbb", Routes: []string{"api.example.com/v1", "/hello"}},
			Weight:  10,
		},
	}
	if edit != nil {
		edit(&a)
	}
	return a
}

func TestValidateCanary(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(a *v1.Assignment)
		field string // "" valid
		msg   string
	}{
		{name: "valid", edit: nil},
		{name: "no canary", edit: func(a *v1.Assignment) { a.Canary = nil }},
		{name: "weight 0", edit: func(a *v1.Assignment) { a.Canary.Weight = 0 }},
		{name: "weight 100", edit: func(a *v1.Assignment) { a.Canary.Weight = 100 }},
		{name: "header sticky", edit: func(a *v1.Assignment) { a.Canary.Sticky = "header:x-user" }},
		{name: "cookie sticky", edit: func(a *v1.Assignment) { a.Canary.Sticky = "cookie:session" }},
		{name: "negative weight", edit: func(a *v1.Assignment) { a.Canary.Weight = -1 }, field: "canary.weight", msg: "percent from 0 to 100"},
		{name: "weight over 100", edit: func(a *v1.Assignment) { a.Canary.Weight = 101 }, field: "canary.weight", msg: "out of range"},
		{name: "bad sticky kind", edit: func(a *v1.Assignment) { a.Canary.Sticky = "query:u" }, field: "canary.sticky", msg: "header:NAME or cookie:NAME"},
		{name: "bad sticky name", edit: func(a *v1.Assignment) { a.Canary.Sticky = "header:x user" }, field: "canary.sticky", msg: "not a valid header name"},
		{name: "other app", edit: func(a *v1.Assignment) { a.Canary.Version.App = "echo" }, field: "canary.version.app", msg: "same app"},
		{name: "no digest", edit: func(a *v1.Assignment) { a.Canary.Version.Digest = "" }, field: "canary.version.digest", msg: "required"},
		{name: "same digest", edit: func(a *v1.Assignment) { a.Canary.Version.Digest = "sha256:aaa" }, field: "canary.version.digest", msg: "promote"},
		{name: "other routes", edit: func(a *v1.Assignment) { a.Canary.Version.Routes = []string{"/hello"} }, field: "canary.version.routes", msg: "same routes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := canaryAssignment(tc.edit)
			err := a.ValidateCanary()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("ValidateCanary: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ValidateCanary accepted it")
			}
			if err.Code != v1.CodeBadRequest || err.Field != tc.field || !strings.Contains(err.Message, tc.msg) || !strings.Contains(err.Message, "deployment hello") {
				t.Fatalf("got %+v, want field %s and a message with %q naming the deployment", err, tc.field, tc.msg)
			}
		})
	}
}

// TestCanaryWireCompatible: an assignment without a canary encodes as before, and one
// from an older server (no canary field) decodes to no canary.
func TestCanaryWireCompatible(t *testing.T) {
	b, err := json.Marshal(canaryAssignment(func(a *v1.Assignment) { a.Canary = nil }))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "canary") {
		t.Fatalf("an assignment without a canary mentions one: %s", b)
	}
	var a v1.Assignment
	if err := json.Unmarshal([]byte(`{"deployment":"hello","node":"n1","generation":3,"version":{"app":"hello","digest":"sha256:a"}}`), &a); err != nil {
		t.Fatal(err)
	}
	if a.Canary != nil {
		t.Fatalf("canary %+v from a body without one", a.Canary)
	}
	in := canaryAssignment(func(a *v1.Assignment) { a.Canary.Sticky = "cookie:s" })
	b, err = json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out v1.Assignment
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Canary == nil || out.Canary.Weight != 10 || out.Canary.Sticky != "cookie:s" || out.Canary.Version.Digest != "sha256:bbb" {
		t.Fatalf("round trip lost the canary: %s", b)
	}
}

func FuzzParseSticky(f *testing.F) {
	for _, s := range []string{"header:X-User", "cookie:session", "", ":", "header:", "query:x", "header:a b", "cookie:" + strings.Repeat("a", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, name, err := v1.ParseSticky(s)
		if err != nil {
			if !strings.Contains(err.Error(), "header") && !strings.Contains(err.Error(), "cookie") {
				t.Fatalf("error %q does not say what to write", err)
			}
			return
		}
		if (kind != "header" && kind != "cookie") || name == "" || len(name) > 128 {
			t.Fatalf("ParseSticky(%q) = %q, %q", s, kind, name)
		}
		// Canonical: parsing the result again gives the same.
		k2, n2, err := v1.ParseSticky(kind + ":" + name)
		if err != nil || k2 != kind || n2 != name {
			t.Fatalf("ParseSticky(%q:%q) = %q, %q, %v: not stable", kind, name, k2, n2, err)
		}
	})
}

// FuzzAssignmentCanary: any assignment body a node may receive decodes and validates
// without panicking, and a canary that passes has a weight in range, the stable
// version's app and routes, and another digest.
func FuzzAssignmentCanary(f *testing.F) {
	for _, a := range []v1.Assignment{canaryAssignment(nil), canaryAssignment(func(a *v1.Assignment) { a.Canary.Weight = 101 })} {
		b, err := json.Marshal(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"canary":null}`))
	f.Add([]byte(`{"canary":{"weight":-5,"sticky":"cookie:"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var a v1.Assignment
		if json.Unmarshal(body, &a) != nil {
			return
		}
		if err := a.ValidateCanary(); err != nil || a.Canary == nil {
			if err != nil && (err.Field == "" || err.Message == "") {
				t.Fatalf("error without a field or message: %+v", err)
			}
			return
		}
		c := a.Canary
		if c.Weight < 0 || c.Weight > 100 || c.Version.App != a.Version.App || c.Version.Digest == a.Version.Digest || c.Version.Digest == "" {
			t.Fatalf("accepted %+v beside %+v", c, a.Version)
		}
	})
}
