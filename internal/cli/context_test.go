package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestContextFile(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	t.Setenv("FERMION_HOME", home)

	sc, err := loadContext()
	if err != nil || sc != (savedContext{}) {
		t.Fatalf("missing context: %+v, %v; want empty, no error", sc, err)
	}
	path, err := saveContext("http://10.0.0.1:7070", "tok-1")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(home, "context.json") {
		t.Fatalf("saved to %s", path)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("context file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if di, err := os.Stat(home); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("context directory mode %v (%v), want 0700", di.Mode(), err)
	}
	sc, err = loadContext()
	if err != nil || sc != (savedContext{Server: "http://10.0.0.1:7070", Token: "tok-1"}) {
		t.Fatalf("loaded %+v, %v", sc, err)
	}

	// Concurrent saves leave one whole file and no temporary files.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := saveContext("http://s", strings.Repeat("t", 1000+i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if sc, err := loadContext(); err != nil || sc.Server != "http://s" {
		t.Fatalf("after concurrent saves: %+v, %v", sc, err)
	}
	entries, _ := os.ReadDir(home)
	if len(entries) != 1 {
		t.Fatalf("files left in %s: %v", home, entries)
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadContext(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("malformed context: %v, want an error naming %s", err, path)
	}
}

func TestContextDefaultHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FERMION_HOME", "")
	t.Setenv("HOME", home)
	p, err := contextPath()
	if err != nil || p != filepath.Join(home, ".fermion", "context.json") {
		t.Fatalf("context path %s, %v", p, err)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name                  string
		flagServer, flagToken string
		envServer, envToken   string
		saved                 *savedContext
		wantServer, wantToken string
	}{
		{name: "defaults", wantServer: defaultServer},
		{name: "flags win", flagServer: "http://f", flagToken: "ft", envServer: "http://e", envToken: "et", saved: &savedContext{Server: "http://s", Token: "st"}, wantServer: "http://f", wantToken: "ft"},
		{name: "environment next", envServer: "http://e", envToken: "et", saved: &savedContext{Server: "http://s", Token: "st"}, wantServer: "http://e", wantToken: "et"},
		{name: "saved context last", saved: &savedContext{Server: "http://s/", Token: "st"}, wantServer: "http://s/", wantToken: "st"},
		{name: "saved token only for its server", flagServer: "http://elsewhere", saved: &savedContext{Server: "http://s", Token: "st"}, wantServer: "http://elsewhere"},
		{name: "saved token for the same server", envServer: "http://s/", saved: &savedContext{Server: "http://s", Token: "st"}, wantServer: "http://s/", wantToken: "st"},
		{name: "saved server, token from the environment", envToken: "et", saved: &savedContext{Server: "http://s", Token: "st"}, wantServer: "http://s", wantToken: "et"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("FERMION_HOME", home)
			t.Setenv("FERMION_SERVER", tt.envServer)
			t.Setenv("FERMION_TOKEN", tt.envToken)
			if tt.saved != nil {
				if _, err := saveContext(tt.saved.Server, tt.saved.Token); err != nil {
					t.Fatal(err)
				}
			}
			f := apiFlags{server: tt.flagServer, token: tt.flagToken}
			if err := f.resolve(); err != nil {
				t.Fatal(err)
			}
			if f.usedServer != tt.wantServer || f.usedToken != tt.wantToken {
				t.Fatalf("server %q token %q, want %q %q", f.usedServer, f.usedToken, tt.wantServer, tt.wantToken)
			}
		})
	}
}

// TestExplainCertificateErrors: each way an https control plane's certificate can fail
// gets the step that fixes it.
func TestExplainCertificateErrors(t *testing.T) {
	f := &apiFlags{usedServer: "https://cp:7070", serverFrom: "--server"}
	wrap := func(err error) error {
		return &url.Error{Op: "Get", URL: "https://cp:7070/v1/nodes", Err: &tls.CertificateVerificationError{Err: err}}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unknown CA", x509.UnknownAuthorityError{}, "pass the CA with --ca-file or FERMION_CA_FILE"},
		{"wrong name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "cp"}, "use a name it lists with --server"},
		{"expired", x509.CertificateInvalidError{Reason: x509.Expired}, "renew the --tls-cert files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.explain(context.Background(), wrap(tt.err)).Error(); !strings.Contains(got, tt.want) {
				t.Fatalf("explain = %q, want it to say %q", got, tt.want)
			}
		})
	}
}
