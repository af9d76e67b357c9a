// Command dial is a fault guest for tests, not an example: it GETs the URL in ?url=
// through the host (fermion.Get). On success it answers with the upstream status code
// and body; on failure (for example a host the manifest does not allow) with 502 and
// the error text.
package main

import (
	"io"
	"net/http"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := fermion.Get(r.URL.Query().Get("url"))
		if err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(err.Error()))
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	})
}

func main() {}
