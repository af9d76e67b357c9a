package registry

import (
	"fermion.dev/fermion/internal/artifact"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types, which OCI clients still push.
const (
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// descriptor is the part of an OCI descriptor the registry checks.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// manifest is an image manifest or an index, as far as the registry reads it.
type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

func isImageManifest(mt string) bool {
	return mt == v1.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}

func isIndex(mt string) bool { return mt == v1.MediaTypeImageIndex || mt == mediaTypeDockerList }

// parseManifest validates a manifest body sent with contentType and returns it with
// its media type.
func parseManifest(body []byte, contentType string) (*manifest, string, *apiError) {
	invalid := func(format string, args ...any) (*manifest, string, *apiError) {
		return nil, "", newError(http.StatusBadRequest, codeManifestInvalid, format, args...)
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return invalid("the manifest is not a JSON object")
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return invalid("the manifest is not valid JSON: %v", err)
	}
	mt := ""
	if contentType != "" {
		parsed, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return invalid("invalid Content-Type %q: %v", contentType, err)
		}
		mt = parsed
	}
	switch {
	case mt == "" && m.MediaType == "":
		return invalid("the manifest has no media type: set Content-Type (and mediaType) to %s or %s",
			v1.MediaTypeImageManifest, v1.MediaTypeImageIndex)
	case mt == "":
		mt = m.MediaType
	case m.MediaType != "" && m.MediaType != mt:
		return invalid("Content-Type %q differs from the manifest's mediaType %q", mt, m.MediaType)
	}
	if !isImageManifest(mt) && !isIndex(mt) {
		return invalid("unsupported manifest media type %q: push %s, %s or their Docker v2 equivalents",
			mt, v1.MediaTypeImageManifest, v1.MediaTypeImageIndex)
	}
	if m.SchemaVersion != 2 {
		return invalid("schemaVersion is %d; it must be 2", m.SchemaVersion)
	}
	check := func(where string, d *descriptor) *apiError {
		if err := d.Digest.Validate(); err != nil {
			return newError(http.StatusBadRequest, codeManifestInvalid, "%s: invalid digest %q: %v", where, d.Digest, err)
		}
		if d.Size < 0 {
			return newError(http.StatusBadRequest, codeManifestInvalid, "%s: negative size %d", where, d.Size)
		}
		return nil
	}
	if isImageManifest(mt) {
		if m.Config == nil {
			return invalid("an image manifest needs a config descriptor")
		}
		if e := check("config", m.Config); e != nil {
			return nil, "", e
		}
		for i := range m.Layers {
			if e := check(fmt.Sprintf("layers[%d]", i), &m.Layers[i]); e != nil {
				return nil, "", e
			}
		}
	} else {
		for i := range m.Manifests {
			if e := check(fmt.Sprintf("manifests[%d]", i), &m.Manifests[i]); e != nil {
				return nil, "", e
			}
		}
	}
	if m.Subject != nil {
		if e := check("subject", m.Subject); e != nil {
			return nil, "", e
		}
	}
	return &m, mt, nil
}

// nonDistributable reports layers that live elsewhere by design and are never pushed.
func nonDistributable(mediaType string) bool {
	return strings.Contains(mediaType, ".nondistributable.") || strings.Contains(mediaType, ".foreign.")
}

func (r *Registry) serveManifest(w http.ResponseWriter, req *http.Request, p request) error {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		return r.getManifest(w, req, p.repo, p.ref)
	case http.MethodPut:
		return r.putManifest(w, req, p.repo, p.ref)
	case http.MethodDelete:
		return r.deleteManifest(w, req, p.repo, p.ref)
	}
	return methodNotAllowed(req, "GET, HEAD, PUT, DELETE")
}

func isDigestRef(ref string) bool { return strings.Contains(ref, ":") }

func invalidTag(tag string) *apiError {
	return newError(http.StatusBadRequest, codeTagInvalid,
		"invalid tag %q: up to 128 of [A-Za-z0-9_.-], not starting with . or -", clip(tag)).
		withDetail(map[string]string{"tag": clip(tag)})
}

func manifestUnknown(repo, ref string) *apiError {
	return newError(http.StatusNotFound, codeManifestUnknown, "manifest %s is not in repository %s", ref, repo).
		withDetail(map[string]string{"reference": ref})
}

// resolve turns a tag or digest into the digest of a manifest in repo.
func (r *Registry) resolve(ctx context.Context, repo, ref string) (digest.Digest, error) {
	if isDigestRef(ref) {
		d, err := parseDigest(ref)
		if err != nil {
			return "", invalidDigest(ref, err)
		}
		return d, nil
	}
	if !validTag(ref) {
		return "", invalidTag(ref)
	}
	e, err := r.st.tags.Get(ctx, tagKey(repo, ref))
	if notFound(err) {
		return "", manifestUnknown(repo, ref)
	}
	if err != nil {
		return "", fmt.Errorf("get tag %s:%s: %w", repo, ref, err)
	}
	d, deleted := tagValue(e.Value())
	if deleted {
		return "", manifestUnknown(repo, ref)
	}
	return d, nil
}

// deletedPrefix marks the value of a deleted version tag. A version tag stays bound
// to its digest when deleted, so the name can come back only with the same content:
// deleting yanks a version, it never frees the name for other code.
const deletedPrefix = "deleted:"

// tagValue decodes a fermion_tags value.
func tagValue(v []byte) (d digest.Digest, deleted bool) {
	s, deleted := strings.CutPrefix(string(v), deletedPrefix)
	return digest.Digest(s), deleted
}

// removeTag deletes the tag entry e (a version tag is kept as deleted, still bound to
// its digest), by compare-and-swap on its revision.
func (r *Registry) removeTag(ctx context.Context, key, tag string, e jetstream.KeyValueEntry) error {
	if immutableTag(tag) {
		d, _ := tagValue(e.Value())
		_, err := r.st.tags.Update(ctx, key, []byte(deletedPrefix+d.String()), e.Revision())
		return err
	}
	return r.st.tags.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
}

func (r *Registry) loadManifest(ctx context.Context, repo string, d digest.Digest) (*manifestRecord, uint64, error) {
	e, err := r.st.manifests.Get(ctx, blobKey(repo, d))
	if notFound(err) {
		return nil, 0, manifestUnknown(repo, d.String())
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get manifest %s@%s: %w", repo, d, err)
	}
	var rec manifestRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("decode manifest %s@%s: %w", repo, d, err)
	}
	return &rec, e.Revision(), nil
}

// manifestBytes returns the manifest's bytes, from the record or the object store.
func (r *Registry) manifestBytes(ctx context.Context, rec *manifestRecord) ([]byte, error) {
	if !rec.InObject {
		return rec.Bytes, nil
	}
	b, err := r.st.getBytes(ctx, objectName(rec.Digest))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", rec.Digest, err)
	}
	return b, nil
}

func (r *Registry) getManifest(w http.ResponseWriter, req *http.Request, repo, ref string) error {
	ctx := req.Context()
	d, err := r.resolve(ctx, repo, ref)
	if err != nil {
		return err
	}
	rec, _, err := r.loadManifest(ctx, repo, d)
	if err != nil {
		var e *apiError
		if errors.As(err, &e) {
			return manifestUnknown(repo, ref)
		}
		return err
	}
	var body []byte
	if req.Method == http.MethodGet {
		if body, err = r.manifestBytes(ctx, rec); err != nil {
			return err
		}
	}
	h := w.Header()
	h.Set("Content-Type", rec.MediaType)
	h.Set("Docker-Content-Digest", rec.Digest.String())
	h.Set("Content-Length", itoa(rec.Size))
	h.Set("Etag", `"`+rec.Digest.String()+`"`)
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return nil
}

func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, repo, ref string) error {
	ctx := req.Context()
	var want digest.Digest
	var tags []string
	if isDigestRef(ref) {
		d, err := parseDigest(ref)
		if err != nil {
			return invalidDigest(ref, err)
		}
		want = d
	} else {
		tags = append(tags, ref)
	}
	// ?tag= (distribution-spec 1.1+dev) tags a manifest pushed by digest.
	tags = append(tags, req.URL.Query()["tag"]...)
	for _, tag := range tags {
		if !validTag(tag) {
			return invalidTag(tag)
		}
	}
	limit := r.cfg.MaxManifestBytes
	tooLarge := newError(http.StatusRequestEntityTooLarge, codeSizeInvalid,
		"the manifest is larger than this registry's limit of %d bytes", limit)
	if req.ContentLength > limit {
		return tooLarge
	}
	body, err := io.ReadAll(&limitReader{r: req.Body, n: limit})
	if errors.Is(err, errTooLarge) {
		return tooLarge
	}
	if err != nil {
		return newError(http.StatusBadRequest, codeManifestInvalid, "the request body could not be read: %v", err)
	}
	m, mt, e := parseManifest(body, req.Header.Get("Content-Type"))
	if e != nil {
		return e
	}
	alg := digest.Canonical
	if want != "" {
		alg = want.Algorithm()
	}
	d := alg.FromBytes(body)
	if want != "" && d != want {
		return newError(http.StatusBadRequest, codeDigestInvalid,
			"the manifest hashes to %s, not %s as its reference says", d, want).
			withDetail(map[string]string{"expected": want.String(), "actual": d.String()})
	}
	if err := r.checkReferences(ctx, repo, mt, m); err != nil {
		return err
	}
	if err := r.scanFermionArtifact(ctx, body, m); err != nil {
		return err
	}
	for _, tag := range tags {
		if !immutableTag(tag) {
			continue
		}
		// Refuse before storing anything; setTag checks again under compare-and-swap.
		e, err := r.st.tags.Get(ctx, tagKey(repo, tag))
		if err != nil && !notFound(err) {
			return fmt.Errorf("get tag %s:%s: %w", repo, tag, err)
		}
		if err == nil {
			if cur, _ := tagValue(e.Value()); cur != d {
				return immutableTagError(tag, cur)
			}
		}
	}
	rec := manifestRecord{MediaType: mt, Digest: d, Size: int64(len(body)), ArtifactType: m.ArtifactType}
	if rec.ArtifactType == "" && m.Config != nil {
		rec.ArtifactType = m.Config.MediaType
	}
	if m.Subject != nil {
		rec.Subject = m.Subject.Digest
	}
	if len(body) <= inlineManifestMax {
		rec.Bytes, rec.Annotations = body, m.Annotations
	} else {
		rec.InObject = true
		info, err := r.st.blobs.GetInfo(ctx, objectName(d))
		if err != nil || int64(info.Size) != rec.Size {
			if err != nil && !notFound(err) {
				return fmt.Errorf("stat manifest object %s: %w", d, err)
			}
			if _, err := r.st.blobs.PutBytes(writeContext(ctx), objectName(d), body); err != nil {
				return fmt.Errorf("write manifest object %s: %w", d, err)
			}
		}
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode manifest record: %w", err)
	}
	if _, err := r.st.manifests.Put(ctx, blobKey(repo, d), val); err != nil {
		return fmt.Errorf("put manifest %s@%s: %w", repo, d, err)
	}
	if m.Subject != nil {
		if _, err := r.st.referrers.Put(ctx, referrerKey(repo, m.Subject.Digest, d), nil); err != nil {
			return fmt.Errorf("index referrer %s@%s: %w", repo, d, err)
		}
	}
	for _, tag := range tags {
		if err := r.setTag(ctx, repo, tag, d); err != nil {
			return err
		}
	}
	h := w.Header()
	if len(tags) > 0 {
		h.Set("OCI-Tag", strings.Join(tags, ", "))
	}
	h.Set("Location", "/v2/"+repo+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if m.Subject != nil {
		h.Set("OCI-Subject", m.Subject.Digest.String())
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func immutableTagError(tag string, cur digest.Digest) *apiError {
	return newError(http.StatusForbidden, codeDenied,
		"tag %q is immutable (already %s); push a new version", tag, cur).
		withDetail(map[string]string{"tag": tag, "digest": cur.String()})
}

// checkReferences verifies that what the manifest points at is in repo: an image's
// config and layers (except non-distributable ones), an index's manifests.
func (r *Registry) checkReferences(ctx context.Context, repo, mt string, m *manifest) error {
	missing := func(d digest.Digest, what string) *apiError {
		return newError(http.StatusBadRequest, codeManifestBlobUnknown,
			"%s %s is not in repository %s: push it before the manifest", what, d, repo).
			withDetail(map[string]string{"digest": d.String()})
	}
	if isIndex(mt) {
		for _, c := range m.Manifests {
			_, err := r.st.manifests.Get(ctx, blobKey(repo, c.Digest))
			if notFound(err) {
				return missing(c.Digest, "manifest")
			}
			if err != nil {
				return fmt.Errorf("get manifest %s@%s: %w", repo, c.Digest, err)
			}
		}
		return nil
	}
	blobs := append([]descriptor{*m.Config}, m.Layers...)
	for i, b := range blobs {
		if i > 0 && nonDistributable(b.MediaType) {
			continue
		}
		_, ok, err := r.linkedSize(ctx, repo, b.Digest)
		if err != nil {
			return err
		}
		if !ok {
			what := "layer"
			if i == 0 {
				what = "config blob"
			}
			return missing(b.Digest, what)
		}
	}
	return nil
}

// setTag points tag at d by compare-and-swap on the tag's revision, so concurrent
// pushes of one tag serialize and an immutable tag is never moved.
func (r *Registry) setTag(ctx context.Context, repo, tag string, d digest.Digest) error {
	key := tagKey(repo, tag)
	for range 16 {
		e, err := r.st.tags.Get(ctx, key)
		switch {
		case notFound(err):
			_, err = r.st.tags.Create(ctx, key, []byte(d))
		case err != nil:
			return fmt.Errorf("get tag %s:%s: %w", repo, tag, err)
		case string(e.Value()) == d.String():
			return nil
		default:
			if cur, _ := tagValue(e.Value()); cur != d && immutableTag(tag) {
				return immutableTagError(tag, cur)
			}
			_, err = r.st.tags.Update(ctx, key, []byte(d), e.Revision())
		}
		if err == nil {
			return nil
		}
		if !conflict(err) {
			return fmt.Errorf("set tag %s:%s: %w", repo, tag, err)
		}
	}
	return newError(http.StatusTooManyRequests, codeTooManyRequests, "tag %q is being pushed concurrently; retry", tag)
}

func (r *Registry) deleteManifest(w http.ResponseWriter, req *http.Request, repo, ref string) error {
	ctx := req.Context()
	if !isDigestRef(ref) {
		if !validTag(ref) {
			return invalidTag(ref)
		}
		key := tagKey(repo, ref)
		e, err := r.st.tags.Get(ctx, key)
		if notFound(err) {
			return manifestUnknown(repo, ref)
		}
		if err != nil {
			return fmt.Errorf("get tag %s:%s: %w", repo, ref, err)
		}
		if _, deleted := tagValue(e.Value()); deleted {
			return manifestUnknown(repo, ref)
		}
		if err := r.removeTag(ctx, key, ref, e); err != nil && !notFound(err) {
			if conflict(err) {
				return newError(http.StatusTooManyRequests, codeTooManyRequests, "tag %q moved while it was being deleted; retry", ref)
			}
			return fmt.Errorf("delete tag %s:%s: %w", repo, ref, err)
		}
		accepted(w)
		return nil
	}
	d, err := parseDigest(ref)
	if err != nil {
		return invalidDigest(ref, err)
	}
	rec, _, err := r.loadManifest(ctx, repo, d)
	if err != nil {
		return err
	}
	// Tags first, so that no tag ever points at a deleted manifest.
	tags, err := scan(ctx, r.st.tags, repoFilter(repo))
	if err != nil {
		return err
	}
	for _, t := range tags {
		if string(t.Value()) != d.String() {
			continue
		}
		if err := r.removeTag(ctx, t.Key(), tokenName(keyTail(t.Key())), t); err != nil && !conflict(err) && !notFound(err) {
			return fmt.Errorf("delete tag %s: %w", t.Key(), err)
		}
	}
	if rec.Subject != "" {
		if err := r.st.referrers.Delete(ctx, referrerKey(repo, rec.Subject, d)); err != nil && !notFound(err) {
			return fmt.Errorf("unindex referrer %s@%s: %w", repo, d, err)
		}
	}
	if err := r.st.manifests.Delete(ctx, blobKey(repo, d)); err != nil && !notFound(err) {
		return fmt.Errorf("delete manifest %s@%s: %w", repo, d, err)
	}
	accepted(w)
	return nil
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

func writeJSON(w http.ResponseWriter, req *http.Request, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}

func (r *Registry) serveTags(w http.ResponseWriter, req *http.Request, p request) error {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return methodNotAllowed(req, "GET, HEAD")
	}
	ctx := req.Context()
	q := req.URL.Query()
	n := -1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return newError(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid n=%q: want a number >= 0", clip(s))
		}
		n = v
	}
	entries, err := scan(ctx, r.st.tags, repoFilter(p.repo))
	if err != nil {
		return err
	}
	tags := make([]string, 0, len(entries))
	for _, e := range entries {
		if _, deleted := tagValue(e.Value()); !deleted {
			tags = append(tags, tokenName(keyTail(e.Key())))
		}
	}
	if len(tags) == 0 {
		known, err := r.repoExists(ctx, p.repo)
		if err != nil {
			return err
		}
		if !known {
			return newError(http.StatusNotFound, codeNameUnknown, "repository %s is unknown", p.repo).
				withDetail(map[string]string{"name": p.repo})
		}
	}
	slices.Sort(tags)
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearch(tags, last)
		if i < len(tags) && tags[i] == last {
			i++
		}
		tags = tags[i:]
	}
	if n >= 0 && n < len(tags) {
		tags = tags[:n]
		if n > 0 {
			next := url.Values{"n": {strconv.Itoa(n)}, "last": {tags[n-1]}}
			w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, p.repo, next.Encode()))
		}
	}
	return writeJSON(w, req, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{p.repo, tags})
}

// repoExists reports whether repo holds any manifest or blob.
func (r *Registry) repoExists(ctx context.Context, repo string) (bool, error) {
	for _, kv := range []jetstream.KeyValue{r.st.manifests, r.st.links} {
		ok, err := exists(ctx, kv, repoFilter(repo))
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (r *Registry) serveReferrers(w http.ResponseWriter, req *http.Request, p request) error {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return methodNotAllowed(req, "GET, HEAD")
	}
	ctx := req.Context()
	subject, err := parseDigest(p.ref)
	if err != nil {
		return invalidDigest(p.ref, err)
	}
	entries, err := scan(ctx, r.st.referrers, referrerFilter(p.repo, subject))
	if err != nil {
		return err
	}
	want := req.URL.Query().Get("artifactType")
	list := make([]descriptor, 0, len(entries))
	for _, e := range entries {
		tok := e.Key()[strings.LastIndexByte(e.Key(), '.')+1:]
		alg, hex, _ := strings.Cut(tok, "-")
		d, err := parseDigest(alg + ":" + hex)
		if err != nil {
			continue
		}
		rec, _, err := r.loadManifest(ctx, p.repo, d)
		var ae *apiError
		if errors.As(err, &ae) {
			continue // deleted since it was indexed
		}
		if err != nil {
			return err
		}
		if want != "" && rec.ArtifactType != want {
			continue
		}
		desc := descriptor{MediaType: rec.MediaType, Digest: d, Size: rec.Size, ArtifactType: rec.ArtifactType, Annotations: rec.Annotations}
		if rec.InObject {
			b, err := r.manifestBytes(ctx, rec)
			if err != nil {
				return err
			}
			var m manifest
			if json.Unmarshal(b, &m) == nil {
				desc.Annotations = m.Annotations
			}
		}
		list = append(list, desc)
	}
	slices.SortFunc(list, func(a, b descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	if want != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, req, v1.MediaTypeImageIndex, struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, v1.MediaTypeImageIndex, list})
}

// scanFermionArtifact is the registry's scanner: a Fermion artifact is only accepted
// when its config is consistent and its module, scanned again here, needs no capability
// its manifest does not grant — whatever client pushed it. Other artifacts pass through.
func (r *Registry) scanFermionArtifact(ctx context.Context, body []byte, m *manifest) error {
	if m.ArtifactType != artifact.ArtifactType && (m.Config == nil || m.Config.MediaType != artifact.ConfigMediaType) {
		return nil
	}
	refuse := func(err error) error {
		r.metrics.uploadFailed(failScan)
		return newError(http.StatusBadRequest, codeManifestInvalid, "fermion artifact refused by the registry scanner: %v", err)
	}
	om, err := artifact.ParseManifest(body)
	if err != nil {
		return refuse(err)
	}
	config, err := r.st.getBytes(ctx, objectName(om.Config.Digest))
	if err != nil {
		return fmt.Errorf("read config %s: %w", om.Config.Digest, err)
	}
	parsed, err := artifact.Parse(body, config)
	if err != nil {
		return refuse(err)
	}
	layer, err := r.st.getBytes(ctx, objectName(parsed.Layer.Digest))
	if err != nil {
		return fmt.Errorf("read layer %s: %w", parsed.Layer.Digest, err)
	}
	if err := artifact.VerifyLayer(parsed.Layer, layer); err != nil {
		return refuse(err)
	}
	if err := artifact.Rescan(parsed, layer); err != nil {
		return refuse(err)
	}
	return nil
}
