package cli_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"fermion.dev/fermion/internal/dashboards"
	"fermion.dev/fermion/internal/fermiontest"
)

// prometheusSeries are the series Prometheus itself writes for every scrape target
// (up, scrape_*) or rule (ALERTS): no Fermion registry exports them.
var prometheusSeries = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true, "ALERTS": true}

// TestDashboardMetricsExist runs a control plane and an agent, both over TLS and with
// their metrics endpoints on, serves one request, and checks that every metric a
// dashboard query names is exported by one of them or recorded by the rules in
// docs/prometheus: a renamed metric breaks this test, not a dashboard at 3 a.m.
func TestDashboardMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test")
	}
	t.Setenv("FERMION_HOME", t.TempDir())
	// The span spool (the backlog panel) exists only when spans are exported.
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	ca, dir, caFile := newTestCA(t)
	certFile, keyFile := ca.Issue(t, dir, 30, time.Now().Add(time.Hour))
	srv := startVerb(t, "server", "--data", t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile,
		"--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	natsURL := srv.waitLine(t, natsLine, time.Minute)
	serverAdmin := srv.waitLine(t, metricsLine, time.Second)
	t.Setenv("FERMION_CA_FILE", caFile)
	c, out, errOut := run(t, "token", "create", "--role", "node")
	tok := tokenLine.FindStringSubmatch(out)
	if c != 0 || tok == nil {
		t.Fatalf("token create: %d %s %s", c, out, errOut)
	}
	a := startVerb(t, "agent", "--server", natsURL, "--token", tok[1], "--name", "dash", "--data", t.TempDir(),
		"--ca-file", caFile, "--tls-cert", certFile, "--tls-key", keyFile, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	gw := a.waitLine(t, gwLine, time.Minute)
	agentAdmin := a.waitLine(t, metricsLine, time.Second)
	if c, out, errOut := run(t, "deploy", filepath.Join(fermiontest.Root(t), "examples", "hello"), "--nodes", "1", "--timeout", "2m"); c != 0 {
		t.Fatalf("deploy: %d\n%s\n%s", c, out, errOut)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer tc.CloseIdleConnections()
	resp, err := tc.Get(gw + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	exported := map[string]bool{}
	for _, admin := range []string{serverAdmin, agentAdmin} {
		_, body, err := httpGet(admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for name := range exposedNames(body) {
			exported[name] = true
		}
	}
	for _, r := range recordedSeries(t) {
		exported[r] = true
	}
	var missing []string
	for _, d := range dashboards.All() {
		for _, p := range d.Panels {
			for _, q := range p.Queries {
				for _, n := range dashboards.MetricNames(q.Expr) {
					if !exported[n] && !prometheusSeries[n] {
						missing = append(missing, d.UID+" / "+p.Title+": "+n)
					}
				}
			}
		}
	}
	if len(missing) > 0 {
		var all []string
		for n := range exported {
			all = append(all, n)
		}
		sort.Strings(all)
		t.Errorf("dashboard queries name metrics that no registry exports and no rule records:\n  %s\nexported and recorded:\n  %s",
			strings.Join(missing, "\n  "), strings.Join(all, " "))
	}
}

var typeLine = regexp.MustCompile(`^# TYPE (\S+) (\S+)$`)

// exposedNames returns the series names a text exposition declares, with the _bucket,
// _sum and _count series of histograms and summaries.
func exposedNames(body string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := typeLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		names[m[1]] = true
		switch m[2] {
		case "histogram":
			names[m[1]+"_bucket"] = true
			fallthrough
		case "summary":
			names[m[1]+"_sum"], names[m[1]+"_count"] = true, true
		}
	}
	return names
}

// recordedSeries returns the record: names of docs/prometheus/fermion-rules.yaml.
func recordedSeries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fermiontest.Root(t), "docs", "prometheus", "fermion-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out = append(out, r.Record)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no recording rules in docs/prometheus/fermion-rules.yaml")
	}
	return out
}
