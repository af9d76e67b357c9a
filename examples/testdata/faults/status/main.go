// Command status is a fault guest for tests, not an example: it answers with the HTTP
// status in ?status= (100–599; none means 200), so a test injects server errors on the
// nodes it chooses by the requests it sends them. A bad status gets 400.
package main

import (
	"net/http"
	"strconv"

	"fermion.dev/fermion/sdk/fermion"
)

func init() {
	fermion.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusOK
		if s := r.URL.Query().Get("status"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 100 || n > 599 {
				http.Error(w, "status must be a whole number from 100 to 599", http.StatusBadRequest)
				return
			}
			code = n
		}
		w.WriteHeader(code)
		w.Write([]byte(strconv.Itoa(code) + "\n"))
	})
}

func main() {}
