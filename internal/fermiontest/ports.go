package fermiontest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// Ports returns n distinct loopback ports that are free now, for servers that must be
// told each other's addresses before any of them starts (a NATS cluster's routes).
//
// A port reserved by listening on port 0 and closing comes from the kernel's ephemeral
// range, where the next outgoing connection (a route dialling a peer that is not up
// yet) or another listener on port 0 may take it before the server binds it. So the
// ports are drawn at random from below that range, where neither happens.
func Ports(t testing.TB, n int) []int {
	t.Helper()
	low := ephemeralLow()
	const floor = 10000
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("no %d free ports below %d", n, low)
		}
		p := floor + rand.IntN(low-floor)
		if seen[p] {
			continue
		}
		seen[p] = true
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		ports = append(ports, p)
	}
	return ports
}

// ephemeralLow is the bottom of the kernel's ephemeral port range (Linux; 32768, the
// common default, elsewhere).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > 10000+1000 {
			low = lo
		}
	}
	return low
}
