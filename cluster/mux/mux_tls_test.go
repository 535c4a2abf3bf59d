package mux

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/cluster/mux/muxtest"
)

// testPKI is a certificate authority made at test time (muxtest.PKI).
type testPKI struct{ *muxtest.PKI }

func newTestPKI(t *testing.T) *testPKI { return &testPKI{muxtest.NewPKI(t)} }

// leaf issues a certificate; uri, if not empty, is its URI SAN.
func (p *testPKI) leaf(t *testing.T, uri string) tls.Certificate { return p.Leaf(t, uri) }

// clusterTLS returns the ClusterTLS of a node presenting cert, trusting p.
func (p *testPKI) clusterTLS(cert tls.Certificate) *ClusterTLS {
	server, client := p.Configs(cert)
	return &ClusterTLS{Server: server, Client: client, PeerID: muxtest.PeerID}
}

// nodeTLS is the ClusterTLS of node id under p.
func (p *testPKI) nodeTLS(t *testing.T, id string) *ClusterTLS {
	t.Helper()
	return p.clusterTLS(p.leaf(t, "strata://node/"+id))
}

// newTestTLSMux starts a mux with ct (nil: plaintext) on 127.0.0.1:0.
func newTestTLSMux(t *testing.T, ct *ClusterTLS, headerTimeout time.Duration, logger *slog.Logger) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if ct != nil {
		if err := ct.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	m := newTLSMux(ln, logger, headerTimeout, ct)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("mux close: %v", err)
		}
	})
	return m
}

// noAccept checks that l hands out no connection for d.
func noAccept(t *testing.T, l raft.StreamLayer, d time.Duration) {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			got <- c
		}
	}()
	select {
	case c := <-got:
		c.Close()
		t.Fatalf("the layer accepted a connection from %s", c.RemoteAddr())
	case <-time.After(d):
	}
}

func TestMuxTLSExchangesData(t *testing.T) {
	pki := newTestPKI(t)
	a := newTestTLSMux(t, pki.nodeTLS(t, "a"), time.Second, nil)
	b := newTestTLSMux(t, pki.nodeTLS(t, "b"), time.Second, nil)
	la, lb := a.Layer("meta"), b.Layer("meta")
	out, err := la.Dial(serverAddr(b), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	in := muxtest.AcceptOne(t, lb)
	for _, c := range []net.Conn{out, in} {
		if _, ok := c.(*layerConn).Conn.(*tlsConn); !ok {
			t.Fatalf("%T under the layer, want *tlsConn", c.(*layerConn).Conn)
		}
	}
	for _, dir := range []struct {
		from, to net.Conn
		msg      string
	}{{out, in, "ping from a"}, {in, out, "pong from b"}} {
		if _, err := dir.from.Write([]byte(dir.msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(dir.msg))
		if _, err := io.ReadFull(dir.to, got); err != nil || string(got) != dir.msg {
			t.Fatalf("read %q, %v; want %q", got, err, dir.msg)
		}
	}
	// Closing sends close_notify: the peer reads a clean EOF, which raft's
	// transport treats as a hang-up rather than an error.
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := in.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := in.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v; want 0, io.EOF", n, err)
	}
}

// A plaintext peer (a mux without TLS, or a bare TCP client that sends
// nothing) is closed within the header timeout and never reaches a layer.
func TestMuxTLSRefusesPlaintext(t *testing.T) {
	pki := newTestPKI(t)
	const headerTimeout = 300 * time.Millisecond
	var logs muxtest.LogBuffer
	m := newTestTLSMux(t, pki.nodeTLS(t, "a"), headerTimeout, logs.Logger(slog.LevelWarn))
	l := m.Layer("meta")
	plain := newTestTLSMux(t, nil, time.Second, nil).Layer("meta")

	for _, tc := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"plaintext mux", func() (net.Conn, error) { return plain.Dial(serverAddr(m), time.Second) }},
		{"silent tcp", func() (net.Conn, error) { return net.Dial("tcp", m.Addr().String()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c, err := tc.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			noAccept(t, l, headerTimeout)
			muxtest.ExpectClosedByPeer(t, c)
			if d := time.Since(start); d > headerTimeout+time.Second {
				t.Fatalf("closed after %v, want within the header timeout %v", d, headerTimeout)
			}
		})
	}
	wait.For(t, 5*time.Second, "no pending handshakes", func() bool { return m.pendingCount() == 0 })
	if n := l.(*muxLayer).connCount(); n != 0 {
		t.Fatalf("layer holds %d connections, want 0", n)
	}
	if !strings.Contains(logs.String(), "TLS handshake failed") {
		t.Fatalf("no warning about the failed handshake:\n%s", logs.String())
	}
}

// Peers with a certificate from another CA, with a certificate that names
// no node, or with none are refused by the accepting mux; a mux refuses to
// dial a server whose certificate is not from its CA.
func TestMuxTLSRefusesBadCertificates(t *testing.T) {
	pki, other := newTestPKI(t), newTestPKI(t)
	m := newTestTLSMux(t, pki.nodeTLS(t, "a"), 500*time.Millisecond, nil)
	l := m.Layer("meta")

	otherCA := other.nodeTLS(t, "b")
	otherCA.Client.VerifyConnection = nil // this peer trusts anyone...
	noNode := pki.clusterTLS(pki.leaf(t, "strata://client/alice"))
	noCert := pki.nodeTLS(t, "c")
	noCert.Client.Certificates = nil
	for _, tc := range []struct {
		name string
		ct   *ClusterTLS
	}{{"other CA", otherCA}, {"no node id", noNode}, {"no client cert", noCert}} {
		t.Run(tc.name, func(t *testing.T) {
			dialer := newTLSMux(mustListen(t), nil, time.Second, tc.ct)
			defer dialer.Close()
			c, err := dialer.Layer("meta").Dial(serverAddr(m), time.Second)
			if err == nil {
				// TLS 1.3: the client finishes before the server has
				// checked its certificate; the server then hangs up.
				defer c.Close()
				noAccept(t, l, 300*time.Millisecond)
				muxtest.ExpectClosedByPeer(t, c)
			}
			noAccept(t, l, 100*time.Millisecond)
		})
	}

	// The other way round: a node of pki does not talk to a server of
	// another CA.
	rogue := newTestTLSMux(t, other.nodeTLS(t, "x"), time.Second, nil)
	rl := rogue.Layer("meta")
	good := newTestTLSMux(t, pki.nodeTLS(t, "b"), time.Second, nil)
	if c, err := good.Layer("meta").Dial(serverAddr(rogue), time.Second); err == nil {
		c.Close()
		t.Fatal("dialled a server whose certificate is from another CA")
	}
	noAccept(t, rl, 100*time.Millisecond)
}

func TestClusterTLSValidate(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name string
		edit func(*ClusterTLS)
		ok   bool
	}{
		{"valid", func(*ClusterTLS) {}, true},
		{"no server", func(c *ClusterTLS) { c.Server = nil }, false},
		{"no client", func(c *ClusterTLS) { c.Client = nil }, false},
		{"no peer id", func(c *ClusterTLS) { c.PeerID = nil }, false},
		{"client cert optional", func(c *ClusterTLS) { c.Server.ClientAuth = tls.VerifyClientCertIfGiven }, false},
		{"any client cert unverified", func(c *ClusterTLS) { c.Server.ClientAuth = tls.RequireAnyClientCert }, false},
		{"any client cert, own check", func(c *ClusterTLS) {
			c.Server.ClientAuth = tls.RequireAnyClientCert
			c.Server.VerifyConnection = func(tls.ConnectionState) error { return nil }
		}, true},
		{"client without certificate", func(c *ClusterTLS) { c.Client.Certificates = nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := pki.nodeTLS(t, "a")
			tc.edit(ct)
			err := ct.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
