package cli

import (
	"net"
	"net/url"
	"strings"
)

// Where a server command says it answers. A listener on a wildcard address (":8080",
// "0.0.0.0:8080", "[::]:8080") reports the wildcard as its host, and "http://[::]:8080"
// is not an address a person can paste. Every line that prints where fermion up,
// server, agent, run or registry serve answers goes through reachable or reachableURL:
// a wildcard host becomes localhost, and the line says the port answers on every
// interface (from another machine, use this machine's name).

// everyInterface is what a line adds after an address that came from a wildcard.
const everyInterface = " (listening on every interface)"

// reachable is addr (host:port, as a listener reports it) as a person on this machine
// dials it: a wildcard host (none, 0.0.0.0, ::) becomes localhost, and note is
// everyInterface; any other address comes back as it was, with no note.
func reachable(addr string) (hostport, note string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, ""
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr, ""
	}
	return net.JoinHostPort("localhost", port), everyInterface
}

// reachableURL is u (one URL, or several separated by commas as --server takes them)
// with each wildcard host made localhost as reachable does, and its note once. A URL
// that does not parse is left as it is.
func reachableURL(u string) (string, string) {
	urls := strings.Split(u, ",")
	note := ""
	for i, s := range urls {
		p, err := url.Parse(s)
		if err != nil || p.Host == "" {
			continue
		}
		if h, n := reachable(p.Host); n != "" {
			p.Host, note = h, n
			urls[i] = p.String()
		}
	}
	return strings.Join(urls, ","), note
}
