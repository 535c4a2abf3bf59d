package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stratalog/strata/internal/fileutil"
)

// backdate is how long before now a new certificate becomes valid, for
// peers whose clocks are behind.
const backdate = time.Hour

// CreateCA makes a self-signed CA certificate and its key (PEM), valid
// for validity from one hour ago. The CA signs leaf certificates only
// (path length 0).
func CreateCA(commonName string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if commonName == "" || validity <= 0 {
		return nil, nil, fmt.Errorf("%w: a CA needs a common name and a positive validity", ErrBadCA)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := template(commonName, validity)
	if err != nil {
		return nil, nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: create CA: %w", err)
	}
	return encode(der, key)
}

// CreateNode makes a node certificate for nodeID signed by the CA: CN and
// URI SAN strata://node/<nodeID>, DNS and IP SANs from hosts plus
// localhost, 127.0.0.1 and ::1, usages ServerAuth and ClientAuth. Its
// expiry is capped at the CA's.
func CreateNode(caCertPEM, caKeyPEM []byte, nodeID string, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	u, err := NodeURI(nodeID)
	if err != nil {
		return nil, nil, err
	}
	return createLeaf(caCertPEM, caKeyPEM, nodeID, validity, func(t *x509.Certificate) {
		t.URIs = []*url.URL{u}
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		addHosts(t, append(append([]string{}, hosts...), "localhost", "127.0.0.1", "::1"))
	})
}

// CreateClient makes a client certificate for name (CN=name, ClientAuth
// usage only, no SAN) signed by the CA. Its expiry is capped at the CA's.
func CreateClient(caCertPEM, caKeyPEM []byte, name string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, nil, fmt.Errorf("tlsutil: invalid client name %q", name)
	}
	return createLeaf(caCertPEM, caKeyPEM, name, validity, func(t *x509.Certificate) {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
}

func createLeaf(caCertPEM, caKeyPEM []byte, cn string, validity time.Duration, fill func(*x509.Certificate)) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("tlsutil: validity must be positive, got %s", validity)
	}
	ca, caKey, err := parseCA(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := template(cn, validity)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	fill(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: sign certificate for %q: %w", cn, err)
	}
	return encode(der, key)
}

// template is what every certificate shares: a random 128-bit serial,
// SHA-256 with ECDSA, valid from one hour ago for validity.
func template(cn string, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: cn},
		NotBefore:          now.Add(-backdate),
		NotAfter:           now.Add(validity),
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}, nil
}

// addHosts adds each distinct non-empty host as an IP or DNS SAN.
func addHosts(t *x509.Certificate, hosts []string) {
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !seen[ip.String()] {
				seen[ip.String()] = true
				t.IPAddresses = append(t.IPAddresses, ip)
			}
			continue
		}
		if h = strings.ToLower(h); !seen[h] {
			seen[h] = true
			t.DNSNames = append(t.DNSNames, h)
		}
	}
}

// parseCA reads a CA certificate (the first PEM certificate) and its key,
// and checks that they match and that the certificate is a CA.
func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	b, rest := pem.Decode(certPEM)
	for b != nil && b.Type != "CERTIFICATE" {
		b, rest = pem.Decode(rest)
	}
	if b == nil {
		return nil, nil, fmt.Errorf("%w: no PEM certificate", ErrBadCA)
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadCA, err)
	}
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("%w: %q is not a CA certificate", ErrBadCA, ca.Subject.CommonName)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: key: %w", ErrBadCA, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("%w: the key does not match the certificate %q", ErrBadCA, ca.Subject.CommonName)
	}
	return ca, key, nil
}

// parseKey reads a PKCS #8, SEC 1 (EC) or PKCS #1 (RSA) PEM private key.
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	for rest := keyPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key")
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, err
			}
			if s, ok := k.(crypto.Signer); ok {
				return s, nil
			}
			return nil, fmt.Errorf("unsupported key type %T", k)
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(b.Bytes)
		}
	}
}

func encode(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}

// WriteFiles writes certPEM to dir/base.crt (mode 0644) and keyPEM to
// dir/base.key (mode 0600), creating dir (0755) if needed. Each file is
// written to a temporary file, synced and renamed into place, and the
// directory is synced, so a reader (a Store) sees the old or the new file,
// never a part. Unless overwrite is set, it fails with ErrExists, before
// writing anything, if either file exists. The key is renamed into place
// first.
func WriteFiles(dir, base string, certPEM, keyPEM []byte, overwrite bool) (certPath, keyPath string, err error) {
	if base == "" || strings.ContainsAny(base, `/\`) || base == "." || base == ".." {
		return "", "", fmt.Errorf("tlsutil: invalid file base name %q", base)
	}
	certPath = filepath.Join(dir, base+".crt")
	keyPath = filepath.Join(dir, base+".key")
	if !overwrite {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", "", fmt.Errorf("%w: %s", ErrExists, p)
			} else if !os.IsNotExist(err) {
				return "", "", err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if err := writeAtomic(keyPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeAtomic(certPath, certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, fileutil.SyncDir(dir)
}

func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
