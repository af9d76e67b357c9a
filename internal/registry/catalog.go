package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// catalogPage is the page size of /v2/_catalog when the client gives no n, and the
// largest it may ask for: a registry with many repositories answers in pages (with a
// Link to the next one), never in one unbounded body.
const catalogPage = 1000

// serveCatalog lists repositories — those holding a manifest or a blob — in lexical
// order, paginated as the distribution spec describes: n at most per page, starting
// after last, with a Link header (rel="next") when more follow.
func (r *Registry) serveCatalog(w http.ResponseWriter, req *http.Request) error {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return methodNotAllowed(req, "GET, HEAD")
	}
	q := req.URL.Query()
	n, last, e := parseCatalogQuery(q)
	if e != nil {
		return e
	}
	repos, err := r.repositories(req.Context())
	if err != nil {
		return err
	}
	page, more := catalogSlice(repos, last, n)
	if more {
		next := url.Values{"n": {strconv.Itoa(n)}, "last": {page[len(page)-1]}}
		w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?%s>; rel="next"`, next.Encode()))
	}
	return writeJSON(w, req, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{page})
}

// parseCatalogQuery reads n (default and cap catalogPage) and last.
func parseCatalogQuery(q url.Values) (n int, last string, e *apiError) {
	n = catalogPage
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return 0, "", newError(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid n=%q: want a number from 0 to %d", clip(s), catalogPage)
		}
		n = min(v, catalogPage)
	}
	last = q.Get("last")
	if last != "" && !validRepo(last) {
		return 0, "", newError(http.StatusBadRequest, codeNameInvalid,
			"invalid last=%q: it must be a repository name, as the previous page's Link gives it", clip(last))
	}
	return n, last, nil
}

// catalogSlice returns up to n of the sorted names after last, and whether more follow.
func catalogSlice(sorted []string, last string, n int) ([]string, bool) {
	i := 0
	if last != "" {
		i, _ = slices.BinarySearch(sorted, last)
		if i < len(sorted) && sorted[i] == last {
			i++
		}
	}
	rest := sorted[i:]
	if n < len(rest) {
		return rest[:n], n > 0
	}
	return rest, false
}

// repositories returns the sorted names of the repositories holding a manifest or a
// blob, from the first token of the manifest and link keys.
func (r *Registry) repositories(ctx context.Context) ([]string, error) {
	set := map[string]struct{}{}
	for _, kv := range []jetstream.KeyValue{r.st.manifests, r.st.links} {
		entries, err := scan(ctx, kv, ">", jetstream.MetaOnly())
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			tok, _, _ := strings.Cut(e.Key(), ".")
			set[tokenName(tok)] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}
