package tlsutil_test

import (
	"crypto/tls"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/internal/tlsutil"
	"github.com/stratalog/strata/internal/tlsutil/tlstest"
)

const testReloadInterval = 50 * time.Millisecond

// TestReloadCertificate: a listener serves a rotated certificate on new
// handshakes without a restart, and keeps it when the file is then
// replaced by garbage, warning once.
func TestReloadCertificate(t *testing.T) {
	ca := tlstest.NewCA(t)
	files := ca.Node(t, "n1")
	logger, logs := newLogger()
	srv := open(t, files, logger)
	srv.SetReloadCheckInterval(testReloadInterval)
	addr, _ := serve(t, srv.ServerConfig(tls.NoClientCert))
	cl := open(t, tlsutil.Files{CA: ca.CertFile}, nil)

	serial := func() *big.Int {
		t.Helper()
		cs, err := dial(t, addr, cl.ClientConfig(""))
		if err != nil {
			t.Fatal(err)
		}
		return cs.PeerCertificates[0].SerialNumber
	}
	s1 := serial()
	if s1.Cmp(srv.Leaf().SerialNumber) != 0 {
		t.Fatalf("served serial %x, store leaf %x", s1, srv.Leaf().SerialNumber)
	}

	certPEM, keyPEM, err := tlsutil.CreateNode(ca.CertPEM, ca.KeyPEM, "n1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tlsutil.WriteFiles(filepath.Dir(files.Cert), "n1", certPEM, keyPEM, true); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	var s2 *big.Int
	wait.For(t, 5*time.Second, "new certificate served", func() bool {
		s2 = serial()
		return s2.Cmp(s1) != 0
	})
	t.Logf("new serial served %s after the files were replaced (check interval %s)",
		time.Since(written).Round(time.Millisecond), testReloadInterval)
	if s2.Cmp(srv.Leaf().SerialNumber) != 0 {
		t.Fatalf("served serial %x, store leaf %x", s2, srv.Leaf().SerialNumber)
	}

	// A half-written certificate: the previous pair stays, one warning.
	half := certPEM[:len(certPEM)/2]
	if err := os.WriteFile(files.Cert, half, 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "reload warning", func() bool {
		if s := serial(); s.Cmp(s2) != 0 {
			t.Fatalf("served serial %x after a broken reload, want %x", s, s2)
		}
		return logs.count("reload failed") > 0
	})
	for start := time.Now(); time.Since(start) < 4*testReloadInterval; {
		if s := serial(); s.Cmp(s2) != 0 {
			t.Fatalf("served serial %x after a broken reload, want %x", s, s2)
		}
	}
	if n := logs.count("reload failed"); n != 1 {
		t.Fatalf("%d reload warnings for one change, want 1:\n%s", n, logs)
	}
	if logs.count(files.Cert) == 0 {
		t.Fatalf("warning does not name %s:\n%s", files.Cert, logs)
	}
}

// TestReloadKeyMismatch: a new certificate whose key is not yet in place
// is not served; once the key arrives, the pair is.
func TestReloadKeyMismatch(t *testing.T) {
	ca := tlstest.NewCA(t)
	files := ca.Node(t, "n1")
	logger, logs := newLogger()
	srv := open(t, files, logger)
	srv.SetReloadCheckInterval(0)
	s1 := srv.Leaf().SerialNumber

	certPEM, keyPEM, err := tlsutil.CreateNode(ca.CertPEM, ca.KeyPEM, "n1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.Cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := srv.Leaf().SerialNumber; got.Cmp(s1) != 0 {
		t.Fatalf("serving %x with the old key, want still %x", got, s1)
	}
	if logs.count("reload failed") != 1 {
		t.Fatalf("want one warning:\n%s", logs)
	}
	if err := os.WriteFile(files.Key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := srv.Leaf().SerialNumber; got.Cmp(s1) == 0 {
		t.Fatal("new pair not loaded once the key was in place")
	}
}

// TestReloadCA: replacing the CA file with a bundle that adds a new CA
// makes the new CA's clients accepted on new handshakes.
func TestReloadCA(t *testing.T) {
	ca1, ca2 := tlstest.NewCA(t), tlstest.NewCA(t)
	files := ca1.Node(t, "n1")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca1.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	files.CA = caFile
	srv := open(t, files, nil)
	srv.SetReloadCheckInterval(testReloadInterval)
	addr, results := serve(t, srv.ServerConfig(tls.RequireAndVerifyClientCert))

	bobFiles := ca2.Client(t, "bob")
	bobFiles.CA = ca1.CertFile // bob trusts the server's CA
	bob := open(t, bobFiles, nil)
	if _, err := dial(t, addr, bob.ClientConfig("")); err == nil {
		t.Fatal("client of a CA not yet trusted was accepted")
	}
	serverSide(t, results)

	tmp := caFile + ".tmp"
	if err := os.WriteFile(tmp, append(append([]byte{}, ca1.CertPEM...), ca2.CertPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, caFile); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "client of the new CA accepted", func() bool {
		_, err := dial(t, addr, bob.ClientConfig(""))
		serverSide(t, results)
		return err == nil
	})
	alice := open(t, ca1.Client(t, "alice"), nil)
	if _, err := dial(t, addr, alice.ClientConfig("")); err != nil {
		t.Fatalf("client of the old CA refused after the bundle: %v", err)
	}
	serverSide(t, results)
}

// TestReloadConcurrentHandshakes: handshakes running while the pair is
// replaced again and again (the key lands before the certificate, so a
// look in between sees a mismatch) all succeed with a valid pair.
func TestReloadConcurrentHandshakes(t *testing.T) {
	ca := tlstest.NewCA(t)
	files := ca.Node(t, "n1")
	srv := open(t, files, nil)
	srv.SetReloadCheckInterval(0)
	addr, _ := serve(t, srv.ServerConfig(tls.NoClientCert))
	cl := open(t, tlsutil.Files{CA: ca.CertFile}, nil)

	done := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := dial(t, addr, cl.ClientConfig("")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 10 {
		certPEM, keyPEM, err := tlsutil.CreateNode(ca.CertPEM, ca.KeyPEM, "n1", nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tlsutil.WriteFiles(filepath.Dir(files.Cert), "n1", certPEM, keyPEM, true); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("handshake during rotation: %v", err)
	}
}
