package policy

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

var unsigned = AdmissionInput{Artifact: Artifact{Digest: "sha256:0bad"}}

func TestConflictingModes(t *testing.T) {
	p := mustParse(t, admissionPolicy("require-signed", "artifact.signed"))
	t.Run("same version, other mode", func(t *testing.T) {
		s, err := NewSet(Options{}, p.WithMode(ModeAudit).WithVersion(1))
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.With(p.WithMode(ModeDeny).WithVersion(1))
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "conflicting modes") {
			t.Fatalf("err = %v, want ErrConflict about modes", err)
		}
	})
	t.Run("twice in one set", func(t *testing.T) {
		a, b := p.WithMode(ModeAudit), p.WithMode(ModeDeny)
		a.File, b.File = "a.yaml", "b.yaml"
		_, err := NewSet(Options{}, a, b)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "conflicting modes, audit (a.yaml) and deny (b.yaml)") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("twice in one set, same mode", func(t *testing.T) {
		if _, err := NewSet(Options{}, p, p); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("same version, other content", func(t *testing.T) {
		s, _ := NewSet(Options{}, p)
		other := mustParse(t, admissionPolicy("require-signed", "artifact.signed && artifact.signer != ''"))
		if _, err := s.With(other); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v", err)
		}
	})
}

// Staging: audit, then deny, each a new version.
func TestStagingAuditToDeny(t *testing.T) {
	p := mustParse(t, admissionPolicy("require-signed", "artifact.signed"))
	s1, err := (&Set{}).With(p.WithMode(ModeAudit).WithVersion(1))
	if err != nil {
		t.Fatal(err)
	}
	d := s1.Admit(unsigned)
	if !d.Allowed || len(d.Audits) != 1 || d.Audits[0].Version != 1 || d.Outcome() != OutcomeAudit {
		t.Fatalf("audit: %+v", d)
	}
	s2, err := s1.With(p.WithMode(ModeWarn).WithVersion(2))
	if err != nil {
		t.Fatal(err)
	}
	if d := s2.Admit(unsigned); !d.Allowed || len(d.Warnings) != 1 {
		t.Fatalf("warn: %+v", d)
	}
	s3, err := s2.With(p.WithMode(ModeDeny).WithVersion(3))
	if err != nil {
		t.Fatal(err)
	}
	d = s3.Admit(unsigned)
	if d.Allowed || len(d.Denials) != 1 || d.Denials[0].Version != 3 || s3.Len() != 1 {
		t.Fatalf("deny: %+v", d)
	}
	if _, err := s3.With(p.WithMode(ModeAudit).WithVersion(2)); !errors.Is(err, ErrStale) {
		t.Errorf("older version: err = %v, want ErrStale", err)
	}
	same, err := s3.With(p.WithMode(ModeDeny).WithVersion(3))
	if err != nil || same != s3 {
		t.Errorf("reapplying the version in force: %v, %p != %p", err, same, s3)
	}
	// The earlier sets are unchanged.
	if d := s1.Admit(unsigned); !d.Allowed || len(d.Audits) != 1 {
		t.Errorf("s1 changed: %+v", d)
	}
}

func TestFailedWithKeepsPreviousSet(t *testing.T) {
	good := mustParse(t, admissionPolicy("require-signed", "artifact.signed")).WithVersion(1)
	other := mustParse(t, admissionPolicy("limits", "manifest.limits.memory <= 1024")).WithVersion(1)
	s, err := NewSet(Options{}, good, other)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Admit(unsigned).String()
	bad := mustParse(t, admissionPolicy("require-signed", "artifact.signed && nope")).WithVersion(2)
	n, err := s.With(bad)
	if err == nil || n != nil {
		t.Fatalf("With(bad) = %v, %v", n, err)
	}
	if s.Len() != 2 || s.Policy("require-signed").Version != 1 {
		t.Errorf("previous set changed: %v", s.Policies())
	}
	if after := s.Admit(unsigned).String(); after != before {
		t.Errorf("decision changed: %q → %q", before, after)
	}
	// NewSet with one bad policy yields no set at all, not a partial one.
	if n, err := NewSet(Options{}, other, bad); err == nil || n != nil {
		t.Errorf("NewSet with a bad policy = %v, %v", n, err)
	}
}

func TestSetIsIndependentOfCallerCopies(t *testing.T) {
	p := mustParse(t, admissionPolicy("require-signed", "artifact.signed"))
	s, err := NewSet(Options{}, p)
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Mode = ModeAudit
	p.Spec.Validations[0].Message = "changed"
	got := s.Policy("require-signed")
	if got.Spec.Mode != ModeDeny || got.Spec.Validations[0].Message != "" {
		t.Errorf("set sees the caller's change: %+v", got.Spec)
	}
	got.Spec.Mode = ModeWarn
	if s.Policy("require-signed").Spec.Mode != ModeDeny {
		t.Error("Policy returned the set's own copy")
	}
}

func TestWithoutAndOrder(t *testing.T) {
	var ps []*Policy
	for _, n := range []string{"c", "a", "b"} {
		ps = append(ps, mustParse(t, admissionPolicy(n, "artifact.signed")))
	}
	s, err := NewSet(Options{}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range s.Admit(unsigned).Denials {
		names = append(names, v.Policy)
	}
	if strings.Join(names, ",") != "a,b,c" {
		t.Errorf("denials in order %v, want by name", names)
	}
	s2 := s.Without("b")
	if s2.Len() != 2 || s.Len() != 3 || s2.Policy("b") != nil || s.Without("zz") != s {
		t.Errorf("Without: %d %d", s2.Len(), s.Len())
	}
}

func TestNilSetAllows(t *testing.T) {
	var s *Set
	if d := s.Admit(unsigned); !d.Allowed || d.String() != "allowed" {
		t.Errorf("nil set: %v", d)
	}
	if d := s.RuntimeCheck(RuntimeInput{}); !d.Allowed {
		t.Errorf("nil set: %v", d)
	}
	if c, p := s.Placement(AppInput{}); c != nil || p != nil {
		t.Error("nil set constrains placement")
	}
}

// Sets are shared by every request: hammer one from many goroutines (run with -race)
// while another derives new sets from it.
func TestConcurrentAdmit(t *testing.T) {
	s, err := NewSet(Options{}, loadExamples(t)...)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				in := unsigned
				in.Manifest.Limits.Memory = int64(g*i) << 20
				if d := s.Admit(in); d.Allowed {
					t.Error("unsigned artifact allowed")
					return
				}
			}
		}()
	}
	p := mustParse(t, admissionPolicy("extra", "artifact.size < 100"))
	for v := range 20 {
		if _, err := s.With(p.WithVersion(v)); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

// A policy built in Go is validated like a parsed one, and gets the same defaults.
func TestWithValidatesPoliciesBuiltInGo(t *testing.T) {
	p := &Policy{APIVersion: APIVersion, Kind: Kind, Metadata: Metadata{Name: "go-built"},
		Spec: Spec{Target: TargetAdmission, Validations: []Validation{{Expression: "artifact.signed"}}}}
	s, err := NewSet(Options{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Policy("go-built").Spec; got.Mode != ModeDeny || got.FailurePolicy != Fail {
		t.Errorf("defaults not applied: %+v", got)
	}
	if p.Spec.Mode != "" {
		t.Error("NewSet changed the caller's policy")
	}
	if _, err := s.With(p.WithMode("enforce").WithVersion(1)); err == nil || !strings.Contains(err.Error(), `spec.mode: is "enforce"`) {
		t.Errorf("invalid mode: %v", err)
	}
}
