// Command echo is a Fermion function that describes the request it received: it answers
// with a JSON object holding the method, path, raw query string, host, headers (name to
// values, keys sorted) and body (as a string). It shows how an ordinary net/http handler
// sees a request delivered through the reactor ABI.
package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"fermion.dev/fermion/sdk/fermion"
)

// echo is the response document; field order here is the order in the output.
type echo struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"` // encoding/json writes map keys sorted
	Body    string              `json:"body"`
}

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		headers := map[string][]string(r.Header)
		if headers == nil {
			headers = map[string][]string{}
		}
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false) // keep "&" in queries readable
		enc.SetIndent("", "  ")
		err = enc.Encode(echo{
			Method:  r.Method,
			Path:    r.URL.Path,
			Query:   r.URL.RawQuery,
			Host:    r.Host,
			Headers: headers,
			Body:    string(body),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out.Bytes())
	})
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}
