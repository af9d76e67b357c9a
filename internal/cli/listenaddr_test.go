package cli_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestWildcardListenPrintsLocalhost: given wildcard listen addresses (":0"), up (the
// server and agent roles), run and registry serve print localhost URLs that answer,
// say they listen on every interface, and print no wildcard host anywhere; the agent
// registers the same gateway URL with the control plane, and the saved context works.
func TestWildcardListenPrintsLocalhost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts up, run and registry serve: not in -short")
	}
	every := regexp.QuoteMeta(" (listening on every interface)")
	line := func(prefix, url, suffix string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + prefix + `(` + url + `)` + suffix + every + `$`)
	}
	const local = `http://localhost:\d+`
	noWildcard := func(t *testing.T, out string) {
		t.Helper()
		for _, w := range []string{"[::]", "0.0.0.0"} {
			if strings.Contains(out, w) {
				t.Errorf("the output names the wildcard %s:\n%s", w, out)
			}
		}
	}
	// answers fails unless url gives an HTTP response (any status: it was reached).
	answers := func(t *testing.T, url string) int {
		t.Helper()
		code, _, err := httpGet(url)
		if err != nil {
			t.Fatalf("GET %s, the URL printed: %v", url, err)
		}
		return code
	}

	t.Run("up", func(t *testing.T) {
		t.Setenv("FERMION_HOME", t.TempDir())
		b := startVerb(t, "up", "--data", t.TempDir(), "--example", "", "--listen", ":0", "--nats-listen", ":0",
			"--registry-listen", ":0", "--admin-listen", ":0", "--agent-listen", ":0", "--agent-admin-listen", ":0")
		b.waitLine(t, regexp.MustCompile(`(?m)^(ready): `), time.Minute)
		api := b.waitLine(t, line(`control plane \S+: API `, local, ``), time.Second)
		gateway := b.waitLine(t, line(`node local: gateway `, local, ``), time.Second)
		b.waitLine(t, line(`agents connect to `, `nats://localhost:\d+`, ``), time.Second)
		registry := b.waitLine(t, line(`registry `, `localhost:\d+`, ``), time.Second)
		out := b.out.String()
		noWildcard(t, out)
		if n := len(line(`metrics on `, local, `/metrics`).FindAllString(out, -1)); n != 2 {
			t.Errorf("%d metrics lines on localhost, want the server's and the agent's:\n%s", n, out)
		}
		for _, u := range []string{api + "/ui/", "http://" + registry + "/v2/", gateway + "/nothing-here"} {
			answers(t, u)
		}
		// The saved context (the API URL printed) reaches the server, and the node's
		// gateway URL there is the one printed.
		fermiontest.WaitFor(t, 30*time.Second, func() error {
			code, stdout, stderr := run(t, "nodes", "-o", "json")
			var l v1.NodeList
			if code != 0 || json.Unmarshal([]byte(stdout), &l) != nil {
				t.Fatalf("fermion nodes through the saved context: %d\n%s\n%s", code, stdout, stderr)
			}
			if len(l.Nodes) != 1 {
				return fmt.Errorf("%d nodes registered, want the agent's", len(l.Nodes))
			}
			if got := l.Nodes[0].GatewayURL; got != gateway {
				t.Fatalf("the node registered gateway %q, printed %q", got, gateway)
			}
			return nil
		})
	})

	// A --registry-host given is printed as given, without the note: it is the name
	// chosen for the registry, not the wildcard's stand-in.
	t.Run("server with --registry-host", func(t *testing.T) {
		t.Setenv("FERMION_HOME", t.TempDir())
		b := startVerb(t, "server", "--data", t.TempDir(), "--listen", ":0", "--nats-listen", ":0",
			"--registry-listen", ":0", "--registry-host", "registry.example:5000", "--admin-listen", "")
		api := b.waitLine(t, line(`control plane \S+: API `, local, ``), time.Minute)
		b.waitLine(t, regexp.MustCompile(`(?m)^registry (registry\.example:5000)$`), time.Second)
		noWildcard(t, b.out.String())
		answers(t, api+"/ui/")
	})

	t.Run("run", func(t *testing.T) {
		dir := functionDir(t, "good", fermiontest.Guest(t, "examples/hello", true))
		b := startVerb(t, "run", dir, "--listen", ":0", "--admin-listen", ":0", "--cache-dir", t.TempDir(), "--no-build")
		gateway := b.waitLine(t, line(`gateway listening on `, local, ``), time.Minute)
		b.waitLine(t, regexp.MustCompile(`(?m)^serving good@0\.1\.0 at (`+regexp.QuoteMeta(gateway)+`/good)$`), time.Second)
		metrics := b.waitLine(t, line(`metrics on `, local, `/metrics`), time.Second)
		noWildcard(t, b.out.String())
		if code := answers(t, gateway+"/good"); code != 200 {
			t.Errorf("GET %s/good = %d, want 200", gateway, code)
		}
		if code := answers(t, metrics+"/metrics"); code != 200 {
			t.Errorf("GET %s/metrics = %d, want 200", metrics, code)
		}
	})

	t.Run("registry serve", func(t *testing.T) {
		b := startVerb(t, "registry", "serve", "--data", t.TempDir(), "--listen", ":0", "--push-token", "secret", "--log-level", "warn")
		reg := b.waitLine(t, line(`registry listening on `, local, ` \(data in \S+\)`), 30*time.Second)
		noWildcard(t, b.out.String())
		answers(t, reg+"/v2/")
	})
}
