package agent

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"fermion.dev/fermion/internal/gateway"
)

// routeReadiness answers GET /readyz?route=/path[&host=name] on the admin address with
// the readiness of one route, for load balancers that health-check each route: 200 while
// the gateway serves it, 503 while it drains (it moved away or was removed) and when this
// node has no such route. It is the route's own state, whatever the node's other
// deployments do (a node still starting one deployment serves the others). Every other
// request goes to next, and /readyz without route is the node's readiness as before.
func (d *DataPlane) routeReadiness(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/readyz" || !q.Has("route") {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		path, host := q.Get("route"), q.Get("host")
		if !strings.HasPrefix(path, "/") {
			http.Error(w, fmt.Sprintf("route %q: give a request path starting with /, e.g. /readyz?route=/hello (and &host=name for a host route)", path), http.StatusBadRequest)
			return
		}
		state, route, until := d.Gateway.RouteState(host, path)
		switch state {
		case gateway.RouteServing:
			fmt.Fprintf(w, "ready: route %s%s serves %s@%s\n", route.Host, route.Prefix, route.Target.Name(), route.Target.Version())
		case gateway.RouteDraining:
			http.Error(w, fmt.Sprintf("not ready: route %s%s is draining until %s: it no longer runs on this node", route.Host, route.Prefix, until.UTC().Format(time.RFC3339)), http.StatusServiceUnavailable)
		default:
			http.Error(w, fmt.Sprintf("not ready: no route for host %q path %q on this node", host, path), http.StatusServiceUnavailable)
		}
	})
}
