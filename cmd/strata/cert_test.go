package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/tlsutil"
)

// readCert parses the PEM certificate at path.
func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCertCommands runs strata cert create-ca, create-node and
// create-client in-process and checks the files.
func TestCertCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out bytes.Buffer
	if err := certCreateCA([]string{"--out", dir, "--name", "Test CA", "--days", "10"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := certCreateNode([]string{"n1", "--out", dir, "--hosts", "broker-1.internal,192.0.2.7"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := certCreateClient([]string{"--out", dir, "alice@example", "--days", "5"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ca.crt", "URI:strata://node/n1", "DNS:broker-1.internal", "IP:192.0.2.7",
		"principal:  node:n1", "principal:  user:alice@example", "expires:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	if !ca.IsCA || ca.Subject.CommonName != "Test CA" {
		t.Fatalf("CA: IsCA %v CN %q", ca.IsCA, ca.Subject.CommonName)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, tc := range []struct {
		base, principal string
		usage           x509.ExtKeyUsage
	}{
		{"n1", "node:n1", x509.ExtKeyUsageServerAuth},
		{"alice@example", "user:alice@example", x509.ExtKeyUsageClientAuth},
	} {
		c := readCert(t, filepath.Join(dir, tc.base+".crt"))
		if p := tlsutil.Principal(c); p != tc.principal {
			t.Errorf("%s: principal %q, want %q", tc.base, p, tc.principal)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
			t.Errorf("%s: %v", tc.base, err)
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, tc.base+".crt"), filepath.Join(dir, tc.base+".key")); err != nil {
			t.Errorf("%s: key pair: %v", tc.base, err)
		}
		fi, err := os.Stat(filepath.Join(dir, tc.base+".key"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key: mode %v, err %v", tc.base, fi.Mode().Perm(), err)
		}
	}
	node := readCert(t, filepath.Join(dir, "n1.crt"))
	if len(node.URIs) != 1 || node.URIs[0].String() != "strata://node/n1" {
		t.Fatalf("node URIs %v", node.URIs)
	}

	// Overwrite is refused without --force and leaves the files alone.
	before, _ := os.ReadFile(filepath.Join(dir, "n1.crt"))
	err := certCreateNode([]string{"n1", "--out", dir}, &out)
	if !errors.Is(err, tlsutil.ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second create-node: %v, want a refusal naming --force", err)
	}
	if err := certCreateCA([]string{"--out", dir}, &out); !errors.Is(err, tlsutil.ErrExists) {
		t.Fatalf("second create-ca: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "n1.crt")); !bytes.Equal(before, after) {
		t.Fatal("refused create-node changed n1.crt")
	}
	if err := certCreateNode([]string{"n1", "--out", dir, "--force"}, &out); err != nil {
		t.Fatalf("create-node --force: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "n1.crt")); bytes.Equal(before, after) {
		t.Fatal("--force did not replace n1.crt")
	}
}

func TestCertCommandErrors(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	tests := []struct {
		name string
		run  func([]string, io.Writer) error
		args []string
		want string // in the error; "" for a usage error (exit 2)
	}{
		{"node without a CA", certCreateNode, []string{"n1", "--out", dir}, "create-ca"},
		{"bad node id", certCreateNode, []string{"a/b", "--out", dir}, "invalid node id"},
		{"bad client name", certCreateClient, []string{"../x", "--out", dir}, "invalid client name"},
		{"no node id", certCreateNode, []string{"--out", dir}, ""},
		{"zero days", certCreateCA, []string{"--out", dir, "--days", "0"}, "--days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(tt.args, &out)
			var ee exitError
			switch {
			case tt.want == "" && !(errors.As(err, &ee) && ee.code == 2):
				t.Fatalf("err %v, want exit 2", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
