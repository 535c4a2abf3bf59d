package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestVerifyNodeNeedsNodeURI: a certificate valid for ServerAuth from the
// CA, but without a node URI, is not accepted as a node on the dialing
// side of the cluster port (CreateNode and CreateClient cannot make one,
// so it is made here).
func TestVerifyNodeNeedsNodeURI(t *testing.T) {
	caPEM, caKey, err := CreateCA("CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	web, _, err := createLeaf(caPEM, caKey, "www", time.Hour, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Files{CA: caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := parseFirst(web)
	if err != nil {
		t.Fatal(err)
	}
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{fd}}
	if _, err := s.VerifyNode(cs); !errors.Is(err, ErrNotNode) {
		t.Fatalf("VerifyNode of a server certificate without a node URI: %v, want ErrNotNode", err)
	}
	if _, err := s.verifyNode(cs, x509.ExtKeyUsageClientAuth); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("verify as a client certificate: %v, want ErrNotVerified", err)
	}
}

func parseFirst(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(b.Bytes)
}
