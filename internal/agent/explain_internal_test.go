package agent

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestExplainTLS(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("%w: %w", nats.ErrTLS, err) }
	for _, tt := range []struct {
		err  error
		want string
	}{
		{wrap(x509.UnknownAuthorityError{}), "pass that CA with --ca-file or FERMION_CA_FILE"},
		{wrap(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "cp.example"}), "does not name the host in --server"},
		{wrap(x509.CertificateInvalidError{Reason: x509.Expired}), "renew its --tls-cert files"},
	} {
		got := explainTLS(tt.err)
		if !strings.Contains(got.Error(), tt.want) || !errors.Is(got, nats.ErrTLS) {
			t.Errorf("explainTLS(%v) = %v, want it to say %q and keep the cause", tt.err, got, tt.want)
		}
	}
	plain := errors.New("connection refused")
	if got := explainTLS(plain); got != plain {
		t.Errorf("explainTLS(%v) = %v, want it unchanged", plain, got)
	}
}
