package tlstest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/tlsutil"
)

// Validity is how long the certificates made here are valid.
const Validity = 24 * time.Hour

// CA is a test certificate authority.
type CA struct {
	// CertPEM and KeyPEM are the CA's certificate and key.
	CertPEM, KeyPEM []byte
	// CertFile is the path of the CA certificate (ca.crt).
	CertFile string
}

// NewCA makes a CA named after the test and writes ca.crt and ca.key.
func NewCA(t testing.TB) *CA {
	t.Helper()
	certPEM, keyPEM, err := tlsutil.CreateCA("Strata test CA "+t.Name(), Validity)
	if err != nil {
		t.Fatal(err)
	}
	certPath, _, err := tlsutil.WriteFiles(t.TempDir(), "ca", certPEM, keyPEM, false)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{CertPEM: certPEM, KeyPEM: keyPEM, CertFile: certPath}
}

// Node writes a node certificate for id (hosts: localhost, 127.0.0.1,
// ::1) and its key into a new temporary directory, and returns the files
// with the CA.
func (ca *CA) Node(t testing.TB, id string) tlsutil.Files {
	t.Helper()
	certPEM, keyPEM, err := tlsutil.CreateNode(ca.CertPEM, ca.KeyPEM, id, nil, Validity)
	if err != nil {
		t.Fatal(err)
	}
	return ca.write(t, id, certPEM, keyPEM)
}

// Client writes a client certificate for name (CN=name) and its key into
// a new temporary directory, and returns the files with the CA.
func (ca *CA) Client(t testing.TB, name string) tlsutil.Files {
	t.Helper()
	certPEM, keyPEM, err := tlsutil.CreateClient(ca.CertPEM, ca.KeyPEM, name, Validity)
	if err != nil {
		t.Fatal(err)
	}
	return ca.write(t, "client", certPEM, keyPEM)
}

func (ca *CA) write(t testing.TB, base string, certPEM, keyPEM []byte) tlsutil.Files {
	t.Helper()
	certPath, keyPath, err := tlsutil.WriteFiles(t.TempDir(), filepath.Base(base), certPEM, keyPEM, false)
	if err != nil {
		t.Fatal(err)
	}
	return tlsutil.Files{CA: ca.CertFile, Cert: certPath, Key: keyPath}
}
