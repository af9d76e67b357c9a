package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// TraceIDPlaceholder is where a trace id goes in Config.TraceUIURL.
const TraceIDPlaceholder = "{trace_id}"

// Config configures the console.
type Config struct {
	// TraceUIURL is a trace UI's link template with {trace_id} where the trace id
	// goes (Jaeger: http://jaeger:16686/trace/{trace_id}); "" shows no trace links.
	TraceUIURL string
	// Version is the server's version, shown in the page footer.
	Version string
	// Features says which optional API routes the server serves ("rollout": GET
	// /v1/deployments/{name}/rollout, "slowest": GET /v1/slis/slowest, "instances":
	// GET /v1/deployments/{name}/instances), so that the page neither asks for what is
	// absent nor mistakes an absent route for an empty answer (both are a 404
	// not_found).
	Features map[string]bool
	// Identify says whose an API token is: its id and role, or ok false when it is
	// unknown, revoked or expired. Required.
	Identify func(token string) (id, role string, ok bool)
}

// Session is the body of GET /ui/session: who the presented token is.
type Session struct {
	ID   string `json:"id"`
	Role string `json:"role"`
}

// ValidateTraceUIURL checks a trace UI link template: an absolute http(s) URL that
// says where the trace id goes.
func ValidateTraceUIURL(s string) error {
	if s == "" {
		return nil
	}
	const hint = "want an http(s) URL with {trace_id} where the trace id goes, e.g. http://jaeger:16686/trace/{trace_id}"
	if !strings.Contains(s, TraceIDPlaceholder) {
		return fmt.Errorf("%q has no %s: %s", s, TraceIDPlaceholder, hint)
	}
	u, err := url.Parse(strings.ReplaceAll(s, TraceIDPlaceholder, "0"))
	if err != nil {
		return fmt.Errorf("%q: %v: %s", s, err, hint)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL: %s", s, hint)
	}
	return nil
}

// asset is one embedded file, prepared once: its bytes, their gzip form when that
// is smaller, its type and a strong ETag.
type asset struct {
	body, gz    []byte
	contentType string
	etag        string
}

type handler struct {
	cfg    Config
	assets map[string]*asset // by name under assets/, "index.html"
	config []byte            // /ui/config.json
}

// New returns the console's handler for / and /ui/…; the control plane mounts it
// beside the API on the same listener (and so the same TLS).
func New(cfg Config) (http.Handler, error) {
	if cfg.Identify == nil {
		return nil, fmt.Errorf("console: an Identify func is required")
	}
	if err := ValidateTraceUIURL(cfg.TraceUIURL); err != nil {
		return nil, fmt.Errorf("console: trace UI URL: %w", err)
	}
	h := &handler{cfg: cfg, assets: map[string]*asset{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		h.assets[strings.TrimPrefix(p, "assets/")] = prepare(p, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: read embedded assets: %w", err)
	}
	features := cfg.Features
	if features == nil {
		features = map[string]bool{}
	}
	h.config, _ = json.Marshal(struct {
		TraceURL string          `json:"traceUrl"`
		Version  string          `json:"version"`
		Features map[string]bool `json:"features"`
	}{cfg.TraceUIURL, cfg.Version, features})
	return h, nil
}

func prepare(name string, b []byte) *asset {
	sum := sha256.Sum256(b)
	a := &asset{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	a.contentType = mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // not left to the host's MIME table: modules need these
	case ".js":
		a.contentType = "text/javascript; charset=utf-8"
	case ".css":
		a.contentType = "text/css; charset=utf-8"
	case ".html":
		a.contentType = "text/html; charset=utf-8"
	case ".svg":
		a.contentType = "image/svg+xml"
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	if buf.Len() < len(b) {
		a.gz = buf.Bytes()
	}
	return a
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	// The page runs only its own scripts and talks only to its own origin.
	hdr.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "the console is read with GET; actions go to the /v1 API", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/" || p == "/ui":
		http.Redirect(w, r, "/ui/", http.StatusFound)
		return
	case p == "/ui/config.json":
		hdr.Set("Content-Type", "application/json")
		hdr.Set("Cache-Control", "no-store")
		w.Write(h.config)
		return
	case p == "/ui/session":
		h.serveSession(w, r)
		return
	case !strings.HasPrefix(p, "/ui/"):
		http.Error(w, fmt.Sprintf("no page %s: the console is at /ui/, the API at /v1/", p), http.StatusNotFound)
		return
	}
	name := strings.TrimPrefix(p, "/ui/")
	if name == "" {
		name = "index.html"
	}
	a, ok := h.assets[name]
	if !ok {
		http.Error(w, fmt.Sprintf("no console file %s", name), http.StatusNotFound)
		return
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", a.etag)
	// Revalidate every time: assets change with the binary, and a 304 costs a header.
	hdr.Set("Cache-Control", "no-cache")
	hdr.Add("Vary", "Accept-Encoding")
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r) {
		hdr.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	hdr.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

// serveSession answers who a bearer token is. The page uses it to sign in and to
// decide which buttons to show; the API still checks the role of every action.
func (h *handler) serveSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": "send the token as Authorization: Bearer <token>"})
		return
	}
	id, role, ok := h.cfg.Identify(tok)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": "the token is unknown, revoked or expired: create one with fermion token create, or use the admin token in the server's data directory"})
		return
	}
	json.NewEncoder(w).Encode(Session{ID: id, Role: role})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
