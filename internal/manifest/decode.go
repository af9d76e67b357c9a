package manifest

import (
	"fermion.dev/fermion/internal/diag"
	"fermion.dev/fermion/internal/slo"

	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Defaults for optional settings. They are part of the manifest's meaning
// (Normalize emits them), so changing one changes every app's config digest.
const (
	defaultMemory          = 64 * mib
	defaultTimeout         = 10 * time.Second
	defaultMaxRequestBody  = 1 * mib
	defaultMaxResponseBody = 8 * mib
	defaultQueueTimeout    = 1 * time.Second
	defaultOutboundTimeout = 5 * time.Second
	defaultMinWarm         = 1
	defaultMaxInstances    = 16
	defaultIdleTimeout     = 5 * time.Minute

	minMemory       = 1 * mib
	maxMemory       = 4 * gib // the whole wasm32 address space
	maxTimeout      = 15 * time.Minute
	maxInstances    = 10000
	maxCounter      = math.MaxInt32 // larger counts are typos and would overflow 32-bit consumers
	maxManifestSize = 1 * mib       // a manifest is a few hundred bytes; refuse pathological input early
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
		`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
		`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
	envNameRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelNameRE    = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// schema lists the keys each table accepts; "[]" marks array elements. It
// drives unknown-key detection and did-you-mean suggestions.
var schema = map[string][]string{
	"":                {"manifest_version", "app", "component", "routes", "limits", "capabilities", "scaling", "slo", "strategy"},
	"app":             {"name", "version", "description", "labels"},
	"component":       {"source", "abi", "build", "snapshot", "warmup", "warmup_timeout"},
	"component.build": {"command", "workdir", "env"},
	"routes[]":        {"path", "host"},
	"limits": {"memory", "timeout", "max_request_body", "max_response_body", "max_concurrency", "queue_timeout",
		"max_module_size", "max_code_size", "max_function_size", "max_functions", "max_function_locals",
		"max_function_branches", "max_table_elements", "max_globals", "max_data_segments",
		"max_element_segments", "compile_timeout"},
	"capabilities":         {"env", "allowed_outbound_hosts", "outbound_timeout", "files"},
	"capabilities.files[]": {"source", "destination"},
	"scaling":              {"min_warm", "max_instances", "max_requests_per_instance", "idle_timeout", "target_utilization_percentage"},
	"slo[]":                slo.ManifestFields,
}

// Parse validates a manifest held in memory. path is used only in messages
// (FileName when empty); dir is the manifest's directory, and when it is
// absolute the component, build and mount paths are made absolute too. On failure the error
// is an *Error listing every problem found.
func Parse(path string, data []byte, dir string) (*Manifest, error) {
	file := path
	if file == "" {
		file = FileName
	}
	d := &decoder{file: file}
	if len(data) > maxManifestSize {
		d.probs = append(d.probs, Problem{File: file, Msg: fmt.Sprintf("file is %d bytes; a manifest may be at most %s", len(data), formatSize(maxManifestSize))})
		return nil, &Error{Problems: d.probs}
	}
	// Drop a UTF-8 BOM up front, as the toml library does internally, so
	// its byte offsets and the key index agree with ours.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	raw, err := decodeTOML(data)
	if err != nil {
		return nil, &Error{Problems: []Problem{syntaxProblem(file, data, err)}}
	}
	d.idx = indexKeys(string(data))
	if dir != "" {
		dir = filepath.Clean(dir)
	}
	// Only an absolute dir is joined into paths: a relative one would be
	// joined again by SourcePath, and would make Normalize depend on it.
	base := ""
	if filepath.IsAbs(dir) {
		base = dir
	}
	m := d.manifest(raw, base)
	if len(d.probs) > 0 {
		diag.Sort(d.probs)
		return nil, &Error{Problems: d.probs}
	}
	m.Dir, m.Path = dir, file
	return m, nil
}

// decodeTOML decodes into a generic tree rather than into structs: struct
// decoding stops at the first type mismatch, and the tree lets every
// problem be reported at once with the exact field path. The recover turns
// any library bug into an error because Parse must never panic.
func decodeTOML(data []byte) (raw map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			raw, err = nil, fmt.Errorf("toml decoder failed: %v", r)
		}
	}()
	if !utf8.Valid(data) {
		return nil, errors.New("file is not valid UTF-8")
	}
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

func syntaxProblem(file string, data []byte, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := "invalid TOML: " + pe.Message
		if strings.HasPrefix(pe.Message, `expected value but found "`) {
			// The usual cause is an unquoted string such as name = hello.
			msg += "; strings must be quoted, like name = \"hello\""
		}
		line, col := pe.Position.Line, pe.Position.Col
		if s := pe.Position.Start; s >= 0 && s < len(data) {
			// The library counts a newline token as being on the next line
			// ("line 3" for a header left open at the end of line 2);
			// deriving both from the byte offset points at the real spot.
			line = bytes.Count(data[:s], []byte("\n")) + 1
			col = s - bytes.LastIndexByte(data[:s], '\n')
		}
		return Problem{File: file, Line: line, Col: col, Msg: msg}
	}
	return Problem{File: file, Msg: "invalid TOML: " + err.Error()}
}

type decoder struct {
	file  string
	idx   map[string]position
	probs []Problem
}

// at reports a problem with the value of field, located at its key's line.
// Columns are only given for key-level problems (unknown keys) since the
// message already quotes the offending value.
func (d *decoder) at(field, format string, args ...any) {
	line := 0
	if p, ok := d.idx[field]; ok {
		line = p.line
	}
	d.probs = append(d.probs, Problem{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// missing reports an absent required key. It has no line of its own, except
// inside array entries, where pointing at the entry is the only way to say
// which one.
func (d *decoder) missing(field, entry, hint string) {
	line := 0
	if p, ok := d.idx[entry]; ok && entry != "" {
		line = p.line
	}
	d.probs = append(d.probs, Problem{File: d.file, Line: line, Field: field, Msg: "required; " + hint})
}

// checkKeys reports keys of tbl that the schema does not know.
func (d *decoder) checkKeys(tbl map[string]any, at, kind string) {
	known := schema[kind]
	keys := make([]string, 0, len(tbl))
	for k := range tbl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(known, k) {
			continue
		}
		field := joinPath(at, k)
		what := "unknown field"
		switch tbl[k].(type) {
		case map[string]any, []map[string]any:
			what = "unknown table"
		}
		var msg string
		if s := diag.Closest(k, known); s != "" {
			msg = fmt.Sprintf("%s; did you mean %q?", what, joinPath(at, s))
		} else if home := homeOf(k, kind); home != "" {
			msg = fmt.Sprintf("%s here; %q belongs under %s", what, k, home)
		} else {
			msg = fmt.Sprintf("%s; remove it (valid here: %s)", what, strings.Join(known, ", "))
		}
		p := Problem{File: d.file, Field: field, Msg: msg}
		if pos, ok := d.idx[field]; ok {
			p.Line, p.Col = pos.line, pos.col
		}
		d.probs = append(d.probs, p)
	}
}

// homeOf finds another table where key is valid, for keys put in the wrong
// section (e.g. memory under [scaling]).
func homeOf(key, except string) string {
	kinds := make([]string, 0, len(schema))
	for k := range schema {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		if kind != except && slices.Contains(schema[kind], key) {
			switch {
			case kind == "":
				return "the top level (before any [table])"
			case strings.HasSuffix(kind, "[]"):
				return "[[" + strings.TrimSuffix(kind, "[]") + "]]"
			default:
				return "[" + kind + "]"
			}
		}
	}
	return ""
}

// --- typed getters -----------------------------------------------------------
//
// Each getter returns ok=false when the key is absent or has the wrong type;
// a type mismatch is reported, absence is left to the caller.

func (d *decoder) table(tbl map[string]any, at, key, example string) (map[string]any, bool) {
	v, present := tbl[key]
	if !present {
		return nil, false
	}
	t, ok := v.(map[string]any)
	if !ok {
		d.at(joinPath(at, key), "must be a table, not %s; write it as %s", describe(v), example)
		return nil, false
	}
	return t, true
}

func (d *decoder) str(tbl map[string]any, at, key string) (string, bool) {
	v, present := tbl[key]
	if !present {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		d.typeString(joinPath(at, key), key, v)
		return "", false
	}
	return s, true
}

func (d *decoder) typeString(field, key string, v any) {
	switch v.(type) {
	case int64, float64, bool:
		d.at(field, "must be a string, not %s; put it in quotes: %s = \"%v\"", describe(v), key, v)
	default:
		d.at(field, "must be a string, not %s", describe(v))
	}
}

// integer reads an int in [lo, hi], falling back to def when absent.
func (d *decoder) integer(tbl map[string]any, at, key string, def, lo, hi int64) (int, bool) {
	v, present := tbl[key]
	if !present {
		return int(def), true
	}
	field := joinPath(at, key)
	n, ok := v.(int64)
	if !ok {
		switch x := v.(type) {
		case string:
			var probe int64
			if _, err := fmt.Sscanf(x, "%d", &probe); err == nil && fmt.Sprint(probe) == x {
				d.at(field, "must be an integer, not %s; remove the quotes: %s = %s", describe(v), key, x)
				return 0, false
			}
		case float64:
			d.at(field, "must be a whole number, not %v; for example %s = %d", x, key, def)
			return 0, false
		}
		d.at(field, "must be an integer, not %s; for example %s = %d", describe(v), key, def)
		return 0, false
	}
	if n < lo {
		d.at(field, "must be at least %d, got %d", lo, n)
		return 0, false
	}
	if n > hi {
		d.at(field, "must be at most %d, got %d", hi, n)
		return 0, false
	}
	return int(n), true
}

// duration reads a Go duration string, falling back to def when absent.
// positive demands > 0, otherwise >= 0 is accepted; max 0 means unbounded.
func (d *decoder) duration(tbl map[string]any, at, key string, def time.Duration, positive bool, max time.Duration) (time.Duration, bool) {
	v, present := tbl[key]
	if !present {
		return def, true
	}
	field := joinPath(at, key)
	s, ok := v.(string)
	if !ok {
		if n, isInt := v.(int64); isInt {
			d.at(field, "must be a duration string, not %s; add a unit and quotes: %s = \"%ds\"", describe(v), key, n)
		} else {
			d.at(field, "must be a duration string such as %q, not %s", def.String(), describe(v))
		}
		return 0, false
	}
	dur, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.at(field, "%s is not a duration; use a number with a unit such as \"10s\", \"500ms\" or \"2m\"", quoteShort(s))
		return 0, false
	}
	switch {
	case positive && dur <= 0:
		d.at(field, "must be greater than 0, got %s; for example %s = %q", quoteShort(s), key, def.String())
		return 0, false
	case dur < 0:
		d.at(field, "must not be negative, got %s; use \"0s\" for no wait", quoteShort(s))
		return 0, false
	case max > 0 && dur > max:
		d.at(field, "%s is longer than the maximum of %s", quoteShort(s), max)
		return 0, false
	}
	return dur, true
}

// size reads a byte size (string with unit, or a bare integer of bytes),
// falling back to def when absent.
func (d *decoder) size(tbl map[string]any, at, key string, def int64) (int64, bool) {
	v, present := tbl[key]
	if !present {
		return def, true
	}
	field := joinPath(at, key)
	switch x := v.(type) {
	case int64:
		if x < 0 {
			d.at(field, "must not be negative, got %d", x)
			return 0, false
		}
		return x, true
	case string:
		n, err := parseSize(x)
		switch {
		case errors.Is(err, errNotSize):
			d.at(field, "%s is not a size; use a number with a unit such as \"64MiB\" or \"512KiB\"", quoteShort(x))
			return 0, false
		case err != nil:
			d.at(field, "%s %v", quoteShort(x), err)
			return 0, false
		}
		return n, true
	default:
		d.at(field, "must be a size such as %q, not %s", formatSize(def), describe(v))
		return 0, false
	}
}

// stringMap reads a table of strings, checking each key with checkKey
// (which returns a fix-it message, or "" when the key is fine).
func (d *decoder) stringMap(tbl map[string]any, at, key string, checkKey func(string) string, checkVal func(string) string) (map[string]string, bool) {
	t, ok := d.table(tbl, at, key, fmt.Sprintf("%s = { KEY = \"value\" }", key))
	if !ok {
		return nil, false
	}
	field := joinPath(at, key)
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, len(t))
	good := true
	for _, k := range keys {
		kf := joinPath(field, k)
		if msg := checkKey(k); msg != "" {
			d.at(kf, "%s", msg)
			good = false
			continue
		}
		s, ok := t[k].(string)
		if !ok {
			d.typeString(kf, k, t[k])
			good = false
			continue
		}
		if checkVal != nil {
			if msg := checkVal(s); msg != "" {
				d.at(kf, "%s", msg)
				good = false
				continue
			}
		}
		out[k] = s
	}
	return out, good
}

// array reads an array (inline or of tables) as a slice of values.
func (d *decoder) array(tbl map[string]any, at, key, example string) ([]any, bool) {
	v, present := tbl[key]
	if !present {
		return nil, false
	}
	switch x := v.(type) {
	case []any:
		return x, true
	case []map[string]any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return out, true
	default:
		d.at(joinPath(at, key), "must be an array, not %s; write it as %s", describe(v), example)
		return nil, false
	}
}

// --- sections ----------------------------------------------------------------

func (d *decoder) manifest(raw map[string]any, dir string) *Manifest {
	m := &Manifest{}
	d.checkKeys(raw, "", "")

	if _, present := raw["manifest_version"]; !present {
		d.missing("manifest_version", "", "add manifest_version = 1 at the top of the file")
	} else if v, ok := d.integer(raw, "", "manifest_version", 1, math.MinInt64, math.MaxInt64); ok {
		if v != 1 {
			d.at("manifest_version", "unsupported version %d; this version of fermion reads manifest_version = 1", v)
		}
		m.ManifestVersion = v
	}

	m.App = d.app(raw)
	m.Component = d.component(raw, dir)
	m.Routes = d.routes(raw)
	m.Limits = d.limits(raw)
	m.Capabilities = d.capabilities(raw, dir)
	m.Scaling = d.scaling(raw)
	m.SLOs = d.slos(raw, m.App.Name)
	m.Strategy = d.strategy(raw)
	if m.Limits.MaxConcurrency == 0 {
		m.Limits.MaxConcurrency = m.Scaling.MaxInstances
	}
	return m
}

func (d *decoder) app(raw map[string]any) App {
	var a App
	t, ok := d.table(raw, "", "app", "[app] with name and version keys below it")
	if !ok {
		t = map[string]any{}
	}
	d.checkKeys(t, "app", "app")

	if name, ok := d.str(t, "app", "name"); ok {
		if !nameRE.MatchString(name) {
			msg := fmt.Sprintf("%s is not a valid name; use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit", quoteShort(name))
			if s := slug(name); s != "" && s != name {
				msg += fmt.Sprintf(", like %q", s)
			}
			d.at("app.name", "%s", msg)
		}
		a.Name = name
	} else if _, present := t["name"]; !present {
		d.missing("app.name", "", `add name = "my-app" under [app]`)
	}

	if v, ok := d.str(t, "app", "version"); ok {
		if !semverRE.MatchString(v) {
			d.at("app.version", "%s is not a semantic version; %s", quoteShort(v), semverHint(v))
		}
		a.Version = v
	} else if _, present := t["version"]; !present {
		d.missing("app.version", "", `add version = "0.1.0" under [app]`)
	}

	a.Description, _ = d.str(t, "app", "description")
	if labels, ok := d.stringMap(t, "app", "labels", labelKeyProblem, func(v string) string {
		if n := utf8.RuneCountInString(v); n > 63 {
			return fmt.Sprintf("label value is %d characters; shorten it to at most 63", n)
		}
		return ""
	}); ok {
		a.Labels = labels
	}
	return a
}

// slug turns an invalid app name into a valid suggestion.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 63 {
		out = strings.Trim(out[:63], "-")
	}
	return out
}

func semverHint(v string) string {
	if t := strings.TrimPrefix(strings.TrimPrefix(v, "v"), "V"); t != v && semverRE.MatchString(t) {
		return fmt.Sprintf("drop the leading %q: version = %q", v[:1], t)
	}
	if ok, _ := regexp.MatchString(`^[0-9]+(\.[0-9]+)?$`, v); ok {
		parts := strings.Split(v, ".")
		for len(parts) < 3 {
			parts = append(parts, "0")
		}
		return fmt.Sprintf("use all three numbers: version = %q", strings.Join(parts, "."))
	}
	return `use MAJOR.MINOR.PATCH with optional -prerelease and +build parts, like "0.1.0" or "1.2.3-beta.1"`
}

// labelKeyProblem checks Kubernetes label-key syntax: an optional DNS
// subdomain prefix and "/", then a name of at most 63 characters.
func labelKeyProblem(k string) string {
	const form = "label keys look like \"tier\" or \"example.com/tier\": an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if len(prefix) > 253 || !dnsSubdomainRE.MatchString(prefix) {
			return fmt.Sprintf("invalid label key %s: the prefix must be a lowercase DNS name; %s", quoteShort(k), form)
		}
	}
	if len(name) > 63 || !labelNameRE.MatchString(name) {
		return fmt.Sprintf("invalid label key %s; %s", quoteShort(k), form)
	}
	return ""
}

func envKeyProblem(k string) string {
	if !envNameRE.MatchString(k) {
		return fmt.Sprintf("%s is not a valid environment variable name; use letters, digits and '_', not starting with a digit (e.g. GREETING)", quoteShort(k))
	}
	return ""
}

func envValueProblem(v string) string {
	if strings.ContainsRune(v, 0) {
		return "value contains a NUL byte, which cannot be passed in an environment"
	}
	return ""
}

// relPath validates a path that must stay inside the manifest directory,
// returning the cleaned slash form or a fix-it message. Paths are checked in
// slash form on every OS so a manifest is valid everywhere or nowhere.
func relPath(p string, wantFile bool) (string, string) {
	switch {
	case p == "":
		return "", "must not be empty"
	case strings.ContainsRune(p, 0):
		return "", "must not contain a NUL byte"
	case strings.Contains(p, `\`):
		return "", fmt.Sprintf("use forward slashes in paths: %q", strings.ReplaceAll(p, `\`, "/"))
	case strings.HasPrefix(p, "/") || len(p) >= 2 && p[1] == ':' && (p[0]|0x20 >= 'a' && p[0]|0x20 <= 'z'):
		return "", fmt.Sprintf("%s is absolute; paths must be relative to the manifest's directory, like %q", quoteShort(p), path.Base(p))
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Sprintf("%s escapes the manifest's directory with \"..\"; paths must stay inside it (move the file or the manifest)", quoteShort(p))
	}
	if wantFile && c == "." {
		return "", fmt.Sprintf("%s names the manifest's directory; give the path of a file, like \"app.wasm\"", quoteShort(p))
	}
	return c, ""
}

func join(dir, rel string) string {
	if dir == "" {
		return rel
	}
	return filepath.Join(dir, filepath.FromSlash(rel))
}

func (d *decoder) component(raw map[string]any, dir string) Component {
	var c Component
	t, ok := d.table(raw, "", "component", "[component] with source = \"app.wasm\" below it")
	if !ok {
		t = map[string]any{}
	}
	d.checkKeys(t, "component", "component")

	if src, ok := d.str(t, "component", "source"); ok {
		if clean, msg := relPath(src, true); msg != "" {
			d.at("component.source", "%s", msg)
		} else {
			c.Source = join(dir, clean)
		}
	} else if _, present := t["source"]; !present {
		d.missing("component.source", "", `add source = "app.wasm" (the module's path, relative to this file) under [component]`)
	}

	if abi, ok := d.str(t, "component", "abi"); ok {
		switch abi {
		case "reactor", "command", "":
			c.ABI = abi
		default:
			msg := fmt.Sprintf("%s is not an ABI; use \"reactor\", \"command\" or omit it to detect from the module's exports", quoteShort(abi))
			if s := diag.Closest(abi, []string{"reactor", "command"}); s != "" {
				msg = fmt.Sprintf("%s is not an ABI; did you mean %q?", quoteShort(abi), s)
			}
			d.at("component.abi", "%s", msg)
		}
	}

	if v, present := t["snapshot"]; present {
		if b, ok := v.(bool); ok {
			c.NoSnapshot = !b
		} else {
			d.at("component.snapshot", "must be true or false, not %s; false makes every new instance run _initialize instead of starting from a snapshot", describe(v))
		}
	}

	c.Warmup, c.WarmupTimeout = d.warmup(t) // warmup.go

	if bt, ok := d.table(t, "component", "build", "[component.build] with command = \"...\" below it"); ok {
		d.checkKeys(bt, "component.build", "component.build")
		b := &Build{Workdir: join(dir, ".")}
		if cmd, ok := d.str(bt, "component.build", "command"); ok {
			if strings.TrimSpace(cmd) == "" {
				d.at("component.build.command", "must not be empty; give the shell command that builds %s, or remove [component.build]", c.Source)
			}
			b.Command = cmd
		} else if _, present := bt["command"]; !present {
			d.missing("component.build.command", "", `add command = "..." under [component.build], or remove the table`)
		}
		if wd, ok := d.str(bt, "component.build", "workdir"); ok {
			if clean, msg := relPath(wd, false); msg != "" {
				d.at("component.build.workdir", "%s", msg)
			} else {
				b.Workdir = join(dir, clean)
			}
		}
		b.Env, _ = d.stringMap(bt, "component.build", "env", envKeyProblem, envValueProblem)
		c.Build = b
	}
	return c
}

func (d *decoder) routes(raw map[string]any) []Route {
	const hint = "add at least one [[routes]] table with path = \"/\""
	els, ok := d.array(raw, "", "routes", "[[routes]] tables (note the double brackets)")
	if !ok {
		if _, present := raw["routes"]; !present {
			d.missing("routes", "", hint)
		}
		return nil
	}
	if len(els) == 0 {
		d.at("routes", "must not be empty; %s", hint)
		return nil
	}
	var out []Route
	seen := map[Route]string{}
	for i, el := range els {
		at := indexPath("routes", i)
		t, ok := el.(map[string]any)
		if !ok {
			d.at(at, "must be a table with a path, not %s; write [[routes]] then path = \"/hello\"", describe(el))
			continue
		}
		d.checkKeys(t, at, "routes[]")
		var r Route
		good := true
		if p, ok := d.str(t, at, "path"); ok {
			if msg := routePathProblem(p); msg != "" {
				d.at(joinPath(at, "path"), "%s", msg)
				good = false
			}
			r.Path = p
		} else {
			good = false
			if _, present := t["path"]; !present {
				d.missing(joinPath(at, "path"), at, `add path = "/" to this [[routes]] entry`)
			}
		}
		if h, ok := d.str(t, at, "host"); ok {
			if msg := routeHostProblem(h); msg != "" {
				d.at(joinPath(at, "host"), "%s", msg)
				good = false
			}
			r.Host = strings.TrimSuffix(strings.ToLower(h), ".")
		} else if _, present := t["host"]; present {
			good = false
		}
		if good {
			if prev, dup := seen[r]; dup {
				d.at(joinPath(at, "path"), "duplicate route; %s already has this host and path", prev)
				continue
			}
			seen[r] = at
		}
		out = append(out, r)
	}
	return out
}

func routePathProblem(p string) string {
	switch {
	case p == "":
		return `must not be empty; use "/" to match every path`
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("%s must start with \"/\", like %q", quoteShort(p), "/"+p)
	case strings.HasSuffix(p, "/...") || strings.HasSuffix(p, "/*"):
		base := strings.TrimSuffix(strings.TrimSuffix(p, "..."), "*")
		if base != "/" {
			base = strings.TrimSuffix(base, "/")
		}
		return fmt.Sprintf("%s: wildcards are not needed, routes already match by prefix; use %q", quoteShort(p), base)
	case strings.ContainsAny(p, "?#"):
		return fmt.Sprintf("%s: a route is a path only; remove the query or fragment", quoteShort(p))
	case strings.Contains(p, "*"):
		return fmt.Sprintf("%s: wildcards are not supported; routes match by prefix", quoteShort(p))
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f {
			return fmt.Sprintf("%s must not contain spaces or control characters; percent-encode them", quoteShort(p))
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Sprintf("%s must not contain \".\" or \"..\" segments", quoteShort(p))
		}
	}
	return ""
}

func routeHostProblem(h string) string {
	switch {
	case h == "":
		return ""
	case strings.Contains(h, "://"):
		return fmt.Sprintf("%s is a URL; give only the host name, like %q", quoteShort(h), "api.example.com")
	case h == "*":
		return `omit host to match any host`
	case strings.ContainsAny(h, ":/"):
		return fmt.Sprintf("%s: give only the host name; routes do not match on port or path", quoteShort(h))
	case strings.HasPrefix(h, "*."):
		return checkHostname(h[2:])
	case strings.Contains(h, "*"):
		return fmt.Sprintf("wildcard in %s must be the first label, like \"*.example.com\"", quoteShort(h))
	}
	if a, err := netip.ParseAddr(h); err == nil && a.Is4() {
		return ""
	}
	return checkHostname(h)
}

func (d *decoder) limits(raw map[string]any) Limits {
	l := Limits{}
	t, ok := d.table(raw, "", "limits", "a [limits] table")
	if !ok {
		t = map[string]any{}
	}
	d.checkKeys(t, "limits", "limits")

	if mem, ok := d.size(t, "limits", "memory", defaultMemory); ok {
		switch {
		case mem > maxMemory:
			d.at("limits.memory", "%s is more than the maximum of 4GiB (the wasm32 address space)", formatSize(mem))
		default:
			// Memory is capped in whole 64KiB pages, so round up rather than
			// make users do page arithmetic.
			l.MemoryBytes = roundUpToPage(uint64(mem))
			if l.MemoryBytes < minMemory {
				d.at("limits.memory", "%s is less than the minimum of 1MiB; use at least \"1MiB\"", formatSize(mem))
			}
		}
	}
	l.Timeout, _ = d.duration(t, "limits", "timeout", defaultTimeout, true, maxTimeout)
	if n, ok := d.size(t, "limits", "max_request_body", defaultMaxRequestBody); ok {
		l.MaxRequestBody = n
	}
	if n, ok := d.size(t, "limits", "max_response_body", defaultMaxResponseBody); ok {
		if n == 0 {
			d.at("limits.max_response_body", "must be greater than 0; for example max_response_body = %q", formatSize(defaultMaxResponseBody))
		}
		l.MaxResponseBody = n
	}
	l.MaxConcurrency, _ = d.integer(t, "limits", "max_concurrency", 0, 0, maxCounter)
	l.QueueTimeout, _ = d.duration(t, "limits", "queue_timeout", defaultQueueTimeout, false, 0)
	l.Load = d.loadLimits(t)
	return l
}

// loadLimits reads the load bounds. Absent ones stay 0, the node's default; a bound that
// is present must be positive, since a module cannot be loaded under a bound of 0.
func (d *decoder) loadLimits(t map[string]any) LoadLimits {
	var l LoadLimits
	sizes := []struct {
		key string
		dst *int64
	}{
		{"max_module_size", &l.ModuleSize}, {"max_code_size", &l.CodeSize}, {"max_function_size", &l.FunctionSize},
	}
	for _, s := range sizes {
		if n, ok := d.size(t, "limits", s.key, 0); ok {
			if _, present := t[s.key]; present && n == 0 {
				d.at("limits."+s.key, "must be greater than 0; remove it to use the node's default")
				continue
			}
			*s.dst = n
		}
	}
	counts := []struct {
		key string
		dst *int
	}{
		{"max_functions", &l.Functions}, {"max_function_locals", &l.FunctionLocals},
		{"max_function_branches", &l.FunctionBranches}, {"max_table_elements", &l.TableElements},
		{"max_globals", &l.Globals}, {"max_data_segments", &l.DataSegments},
		{"max_element_segments", &l.ElementSegments},
	}
	for _, c := range counts {
		*c.dst, _ = d.integer(t, "limits", c.key, 0, 1, maxCounter)
	}
	l.CompileTimeout, _ = d.duration(t, "limits", "compile_timeout", 0, true, maxTimeout)
	return l
}

func (d *decoder) capabilities(raw map[string]any, dir string) Capabilities {
	c := Capabilities{}
	t, ok := d.table(raw, "", "capabilities", "a [capabilities] table")
	if !ok {
		t = map[string]any{}
	}
	d.checkKeys(t, "capabilities", "capabilities")

	c.Env, _ = d.stringMap(t, "capabilities", "env", envKeyProblem, envValueProblem)

	if hosts, ok := d.array(t, "capabilities", "allowed_outbound_hosts", `["https://api.example.com"]`); ok {
		for i, h := range hosts {
			field := indexPath("capabilities.allowed_outbound_hosts", i)
			s, ok := h.(string)
			if !ok {
				d.at(field, "must be a string like \"https://api.example.com\", not %s", describe(h))
				continue
			}
			p, msg := parseHostPattern(s)
			if msg != "" {
				d.at(field, "%s: %s", quoteShort(s), msg)
				continue
			}
			c.AllowedOutboundHosts = append(c.AllowedOutboundHosts, p)
		}
	}

	c.OutboundTimeout, _ = d.duration(t, "capabilities", "outbound_timeout", defaultOutboundTimeout, true, 0)

	if files, ok := d.array(t, "capabilities", "files", `[{ source = "static", destination = "/static" }]`); ok {
		seen := map[string]string{}
		for i, f := range files {
			at := indexPath("capabilities.files", i)
			ft, ok := f.(map[string]any)
			if !ok {
				d.at(at, "must be a table like { source = \"static\", destination = \"/static\" }, not %s", describe(f))
				continue
			}
			d.checkKeys(ft, at, "capabilities.files[]")
			var mnt Mount
			good := true
			if src, ok := d.str(ft, at, "source"); ok {
				if clean, msg := relPath(src, false); msg != "" {
					d.at(joinPath(at, "source"), "%s", msg)
					good = false
				} else {
					mnt.Source = join(dir, clean)
				}
			} else {
				good = false
				if _, present := ft["source"]; !present {
					d.missing(joinPath(at, "source"), at, `add source = "dir" (relative to this file) to this entry`)
				}
			}
			if dst, ok := d.str(ft, at, "destination"); ok {
				switch {
				case !strings.HasPrefix(dst, "/"):
					d.at(joinPath(at, "destination"), "%s must be an absolute guest path, like %q", quoteShort(dst), "/"+strings.TrimPrefix(path.Clean("/"+dst), "/"))
					good = false
				case strings.ContainsAny(dst, "\\\x00"):
					d.at(joinPath(at, "destination"), "%s must use forward slashes and no NUL bytes", quoteShort(dst))
					good = false
				default:
					mnt.Destination = path.Clean(dst)
					if prev, dup := seen[mnt.Destination]; dup {
						d.at(joinPath(at, "destination"), "%q is already mounted by %s; each destination may be used once", mnt.Destination, prev)
						good = false
					}
					seen[mnt.Destination] = at
				}
			} else {
				good = false
				if _, present := ft["destination"]; !present {
					d.missing(joinPath(at, "destination"), at, `add destination = "/data" (the absolute path inside the guest) to this entry`)
				}
			}
			if good {
				c.Files = append(c.Files, mnt)
			}
		}
	}
	return c
}

func (d *decoder) scaling(raw map[string]any) Scaling {
	s := Scaling{}
	t, ok := d.table(raw, "", "scaling", "a [scaling] table")
	if !ok {
		t = map[string]any{}
	}
	d.checkKeys(t, "scaling", "scaling")

	minOK, maxOK := false, false
	s.MinWarm, minOK = d.integer(t, "scaling", "min_warm", defaultMinWarm, 0, maxInstances)
	s.MaxInstances, maxOK = d.integer(t, "scaling", "max_instances", defaultMaxInstances, 1, maxInstances)
	s.MaxRequestsPerInstance, _ = d.integer(t, "scaling", "max_requests_per_instance", 0, 0, maxCounter)
	s.IdleTimeout, _ = d.duration(t, "scaling", "idle_timeout", defaultIdleTimeout, true, 0)
	s.TargetUtilizationPercentage, _ = d.integer(t, "scaling", "target_utilization_percentage", 100, 1, 100)
	if minOK && maxOK && s.MinWarm > s.MaxInstances {
		d.at("scaling.min_warm", "min_warm (%d) is more than max_instances (%d); lower min_warm or raise max_instances", s.MinWarm, s.MaxInstances)
	}
	return s
}
