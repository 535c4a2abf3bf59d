package tlsutil_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/tlsutil"
)

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %q", certPEM)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkCommon checks what every generated certificate shares.
func checkCommon(t *testing.T, c *x509.Certificate, certPEM, keyPEM []byte) {
	t.Helper()
	if c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("signature %s", c.SignatureAlgorithm)
	}
	if pk, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pk.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 || c.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %x: want a random positive 128-bit number", c.SerialNumber)
	}
	if d := time.Until(c.NotBefore); d > -59*time.Minute || d < -61*time.Minute {
		t.Errorf("NotBefore %s from now, want -1h", d)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("key does not match: %v", err)
	}
}

func TestCreate(t *testing.T) {
	caPEM, caKey, err := tlsutil.CreateCA("Test CA", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca := parseCert(t, caPEM)
	checkCommon(t, ca, caPEM, caKey)
	if !ca.IsCA || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.Subject.CommonName != "Test CA" {
		t.Fatalf("CA: IsCA %v, MaxPathLenZero %v, key usage %b, CN %q", ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage, ca.Subject.CommonName)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	verify := func(c *x509.Certificate, usage x509.ExtKeyUsage, dns string) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: dns})
		return err
	}

	t.Run("node", func(t *testing.T) {
		certPEM, keyPEM, err := tlsutil.CreateNode(caPEM, caKey, "n1", []string{"broker-1.Example.com", " 10.1.2.3 ", "", "localhost"}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c := parseCert(t, certPEM)
		checkCommon(t, c, certPEM, keyPEM)
		if id, ok := tlsutil.NodeID(c); !ok || id != "n1" || c.Subject.CommonName != "n1" {
			t.Fatalf("NodeID %q %v, CN %q", id, ok, c.Subject.CommonName)
		}
		if len(c.URIs) != 1 || c.URIs[0].String() != "strata://node/n1" {
			t.Fatalf("URIs %v", c.URIs)
		}
		if want := []string{"broker-1.example.com", "localhost"}; !slices.Equal(c.DNSNames, want) {
			t.Fatalf("DNS SANs %v, want %v", c.DNSNames, want)
		}
		var ips []string
		for _, ip := range c.IPAddresses {
			ips = append(ips, ip.String())
		}
		if want := []string{"10.1.2.3", "127.0.0.1", "::1"}; !slices.Equal(ips, want) {
			t.Fatalf("IP SANs %v, want %v", ips, want)
		}
		if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
			t.Fatalf("ext key usage %v", c.ExtKeyUsage)
		}
		for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if err := verify(c, u, "broker-1.example.com"); err != nil {
				t.Fatalf("verify usage %v: %v", u, err)
			}
		}
		if err := verify(c, x509.ExtKeyUsageServerAuth, "other.example.com"); err == nil {
			t.Fatal("verified for a host not in its SANs")
		}
		if !c.NotAfter.After(time.Now().Add(23*time.Hour)) || c.NotAfter.After(time.Now().Add(25*time.Hour)) {
			t.Fatalf("NotAfter %s, want in 24h", c.NotAfter)
		}
	})

	t.Run("client", func(t *testing.T) {
		certPEM, keyPEM, err := tlsutil.CreateClient(caPEM, caKey, "alice", 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c := parseCert(t, certPEM)
		checkCommon(t, c, certPEM, keyPEM)
		if c.Subject.CommonName != "alice" || len(c.URIs) != 0 || len(c.DNSNames) != 0 || len(c.IPAddresses) != 0 {
			t.Fatalf("CN %q, URIs %v, DNS %v, IPs %v", c.Subject.CommonName, c.URIs, c.DNSNames, c.IPAddresses)
		}
		if tlsutil.Principal(c) != "user:alice" {
			t.Fatalf("principal %q", tlsutil.Principal(c))
		}
		if err := verify(c, x509.ExtKeyUsageClientAuth, ""); err != nil {
			t.Fatal(err)
		}
		if err := verify(c, x509.ExtKeyUsageServerAuth, ""); err == nil {
			t.Fatal("a client certificate verified as a server certificate")
		}
	})

	t.Run("expiry capped at the CA's", func(t *testing.T) {
		certPEM, _, err := tlsutil.CreateClient(caPEM, caKey, "bob", 1000*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if c := parseCert(t, certPEM); !c.NotAfter.Equal(ca.NotAfter) {
			t.Fatalf("NotAfter %s, CA's %s", c.NotAfter, ca.NotAfter)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		_, otherKey, err := tlsutil.CreateCA("Other", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		leafPEM, leafKey, err := tlsutil.CreateClient(caPEM, caKey, "carol", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tlsutil.CreateNode(caPEM, caKey, "a/b", nil, time.Hour); !errors.Is(err, tlsutil.ErrBadNodeID) {
			t.Errorf("node id a/b: %v", err)
		}
		if _, _, err := tlsutil.CreateNode(caPEM, otherKey, "n1", nil, time.Hour); !errors.Is(err, tlsutil.ErrBadCA) {
			t.Errorf("CA with another key: %v", err)
		}
		if _, _, err := tlsutil.CreateClient(leafPEM, leafKey, "x", time.Hour); !errors.Is(err, tlsutil.ErrBadCA) {
			t.Errorf("leaf as CA: %v", err)
		}
		if _, _, err := tlsutil.CreateClient(caPEM, caKey, "", time.Hour); err == nil {
			t.Error("empty client name accepted")
		}
	})
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	certPath, keyPath, err := tlsutil.WriteFiles(dir, "n1", []byte("cert"), []byte("key"), false)
	if err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{certPath: 0o644, keyPath: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	if _, _, err := tlsutil.WriteFiles(dir, "n1", []byte("cert2"), []byte("key2"), false); !errors.Is(err, tlsutil.ErrExists) {
		t.Fatalf("overwrite without force: %v", err)
	}
	if b, _ := os.ReadFile(certPath); string(b) != "cert" {
		t.Fatalf("refused write changed the certificate: %q", b)
	}
	if _, _, err := tlsutil.WriteFiles(dir, "n1", []byte("cert2"), []byte("key2"), true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(keyPath); string(b) != "key2" {
		t.Fatalf("key %q after overwrite", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("%d files in %s, want 2 (no temporary file left)", len(entries), dir)
	}
	if _, _, err := tlsutil.WriteFiles(dir, "../x", nil, nil, false); err == nil {
		t.Fatal("base name with a path accepted")
	}
}

// TestOpenErrors: Open refuses bad files and names the file at fault.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	caPEM, caKey, err := tlsutil.CreateCA("CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, _, _ := tlsutil.WriteFiles(dir, "ca", caPEM, caKey, false)
	c1, k1, _ := tlsutil.CreateNode(caPEM, caKey, "n1", nil, time.Hour)
	_, k2, _ := tlsutil.CreateNode(caPEM, caKey, "n2", nil, time.Hour)
	cert, key, _ := tlsutil.WriteFiles(dir, "n1", c1, k1, false)
	_, otherKey, _ := tlsutil.WriteFiles(dir, "n2", c1, k2, false)
	garbage := filepath.Join(dir, "garbage.crt")
	os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nMIIB"), 0o644)
	missing := filepath.Join(dir, "missing.crt")

	tests := []struct {
		name  string
		files tlsutil.Files
		names []string // in the error
	}{
		{"nothing", tlsutil.Files{}, nil},
		{"cert without key", tlsutil.Files{CA: ca, Cert: cert}, []string{cert}},
		{"missing CA", tlsutil.Files{CA: missing, Cert: cert, Key: key}, []string{missing}},
		{"garbage CA", tlsutil.Files{CA: garbage}, []string{garbage}},
		{"key file as CA", tlsutil.Files{CA: key}, []string{key}},
		{"garbage certificate", tlsutil.Files{CA: ca, Cert: garbage, Key: key}, []string{garbage}},
		{"key of another certificate", tlsutil.Files{CA: ca, Cert: cert, Key: otherKey}, []string{cert, otherKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsutil.Open(tt.files, nil)
			if err == nil {
				t.Fatal("opened")
			}
			for _, n := range tt.names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %s", err, n)
				}
			}
		})
	}
	s, err := tlsutil.Open(tlsutil.Files{CA: ca, Cert: cert, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := s.NodeID(); !ok || id != "n1" || s.Leaf().Subject.CommonName != "n1" {
		t.Fatalf("NodeID %q %v", id, ok)
	}
	if err := (tlsutil.Files{CA: ca}).ValidateNode(); !errors.Is(err, tlsutil.ErrBadFiles) {
		t.Fatalf("ValidateNode without cert: %v", err)
	}
}
