package cluster

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testPKI is a certificate authority made at test time (no key material is
// committed). Node certificates carry the URI SAN strata://node/<id>, as
// internal/tlsutil's do, and no DNS or IP names: peers are verified by the
// CA and the URI, not by the address they were dialled at.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "strata test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{cert: cert, key: key, pool: pool}
}

// leaf issues a certificate for client and server use; uri, if not empty,
// is its URI SAN.
func (p *testPKI) leaf(t *testing.T, uri string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: uri},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// testPeerID reads the node id from a verified peer certificate's URI SAN
// strata://node/<id>, as tlsutil.PeerNodeID does.
func testPeerID(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("no peer certificate")
	}
	for _, u := range cs.PeerCertificates[0].URIs {
		if u.Scheme == "strata" && u.Host == "node" {
			if id := strings.TrimPrefix(u.Path, "/"); id != "" {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("certificate %q has no strata://node/<id> URI", cs.PeerCertificates[0].Subject.CommonName)
}

// clusterTLS returns the ClusterTLS of a node presenting cert, trusting p.
// The client verifies the chain itself (the certificates hold no host
// names), the server lets crypto/tls verify the client's.
func (p *testPKI) clusterTLS(cert tls.Certificate) *ClusterTLS {
	pool := p.pool
	return &ClusterTLS{
		Server: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
		},
		Client: &tls.Config{
			MinVersion:         tls.VersionTLS13,
			Certificates:       []tls.Certificate{cert},
			InsecureSkipVerify: true, // replaced by VerifyConnection
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("no server certificate")
				}
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
					Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				})
				return err
			},
		},
		PeerID: testPeerID,
	}
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

// logBuffer collects log records for a test to search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level}))
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
	in := acceptOne(t, lb)
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
	var logs logBuffer
	m := newTestTLSMux(t, pki.nodeTLS(t, "a"), headerTimeout, logs.logger(slog.LevelWarn))
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
			expectClosedByPeer(t, c)
			if d := time.Since(start); d > headerTimeout+time.Second {
				t.Fatalf("closed after %v, want within the header timeout %v", d, headerTimeout)
			}
		})
	}
	eventually(t, 5*time.Second, "no pending handshakes", func() bool { return m.pendingCount() == 0 })
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
				expectClosedByPeer(t, c)
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

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Three nodes run two raft groups over TLS muxes: they elect leaders and
// replicate; closing everything leaves no goroutine behind.
func TestMuxTLSRaftGroups(t *testing.T) {
	baseline := runtime.NumGoroutine()
	pki := newTestPKI(t)
	groupNames := []string{"meta", "data-0", "data-1"}
	nodes := make([]*testNode, 3)
	var servers []raft.Server
	for i := range nodes {
		id := fmt.Sprintf("n%d", i+1)
		ct := pki.nodeTLS(t, id)
		m, err := NewTLSMux(mustListen(t), ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := &testNode{id: id, mux: m, groups: map[string]*Group{}, fsms: map[string]*testFSM{}}
		t.Cleanup(func() { n.close(t) })
		nodes[i] = n
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(m.Addr().String())})
	}
	base := t.TempDir()
	for _, n := range nodes {
		for _, name := range groupNames {
			fsm := newTestFSM()
			g, err := OpenGroup(testGroupConfig(name, n.id, fmt.Sprintf("%s/%s/%s", base, n.id, name)), fsm, n.mux.Layer(name))
			if err != nil {
				t.Fatal(err)
			}
			n.groups[name], n.fsms[name] = g, fsm
			if err := g.BootstrapIfNew(servers); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range groupNames {
		var gs []*Group
		for _, n := range nodes {
			gs = append(gs, n.groups[name])
		}
		var want []string
		for i := range 10 {
			cmd := fmt.Sprintf("%s-%d", name, i)
			applyOnLeader(t, gs, cmd)
			want = append(want, cmd)
		}
		for _, n := range nodes {
			n.fsms[name].waitLen(t, len(want))
			if got := n.fsms[name].commands(); !slices.Equal(got, want) {
				t.Fatalf("node %s group %s holds %q, want %q", n.id, name, got, want)
			}
		}
	}
	for _, n := range nodes {
		n.close(t)
	}
	waitGoroutines(t, baseline)
}

// Under a FaultNet the TLS handshake runs over the fault connection, and
// closing a connection whose peer is stalled (close_notify cannot be sent)
// returns within tlsCloseTimeout.
func TestMuxTLSFaultNet(t *testing.T) {
	pki := newTestPKI(t)
	f := NewFaultNet(1)
	a := newTestTLSMux(t, pki.nodeTLS(t, "a"), time.Second, nil)
	b := newTestTLSMux(t, pki.nodeTLS(t, "b"), time.Second, nil)
	a.setFaults(f, "a")
	b.setFaults(f, "b")
	la, lb := a.Layer("g").(*muxLayer), b.Layer("g").(*muxLayer)
	c, _ := roundTrip(t, la, lb)
	if _, ok := c.(*layerConn).Conn.(*tlsConn).raw.(*faultConn); !ok {
		t.Fatal("TLS does not run over the FaultNet connection")
	}

	f.Isolate("b")
	if _, err := la.Dial(serverAddr(b), time.Second); !errors.Is(err, ErrLinkCut) {
		t.Fatalf("dial over a cut link: %v, want ErrLinkCut", err)
	}
	f.Heal()
	c, _ = roundTrip(t, la, lb)

	f.Stall("b")
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("held"))
		wrote <- err
	}()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- la.Close() }()
	select {
	case <-done:
	case <-time.After(tlsCloseTimeout + 5*time.Second):
		t.Fatal("closing a layer whose peer is stalled did not return")
	}
	t.Logf("layer close with a stalled peer took %v", time.Since(start))
	select {
	case <-wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled write outlived its connection")
	}
	f.Heal()
}

// VerifyMemberTLS accepts a member whose certificate names it and refuses
// one whose certificate names another node; the probed mux logs the probe's
// hang-up at debug only.
func TestVerifyMemberTLS(t *testing.T) {
	pki := newTestPKI(t)
	var logs logBuffer
	m := newTestTLSMux(t, pki.nodeTLS(t, "b"), time.Second, logs.logger(slog.LevelDebug))
	verify := VerifyMemberTLS(pki.nodeTLS(t, "leader"), 2*time.Second)
	ctx := context.Background()
	if err := verify(ctx, "b", m.Addr().String()); err != nil {
		t.Fatalf("member b with a certificate for b: %v", err)
	}
	err := verify(ctx, "c", m.Addr().String())
	if !errors.Is(err, ErrNotAdmitted) || !strings.Contains(err.Error(), `"c"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("member c with a certificate for b: %v; want ErrNotAdmitted naming both", err)
	}
	eventually(t, 5*time.Second, "no pending handshakes", func() bool { return m.pendingCount() == 0 })
	if s := logs.String(); strings.Contains(s, "level=INFO") || strings.Contains(s, "level=WARN") ||
		!strings.Contains(s, "peer closed after the TLS handshake") {
		t.Fatalf("the probed mux logged above Debug, or not the probe's hang-up:\n%s", s)
	}
	other := newTestPKI(t)
	if err := VerifyMemberTLS(other.nodeTLS(t, "leader"), 2*time.Second)(ctx, "b", m.Addr().String()); err == nil {
		t.Fatal("a verifier of another CA accepted b")
	}
	plain := newTestTLSMux(t, nil, 200*time.Millisecond, nil)
	start := time.Now()
	if err := VerifyMemberTLS(pki.nodeTLS(t, "leader"), 500*time.Millisecond)(ctx, "p", plain.Addr().String()); err == nil {
		t.Fatal("a plaintext member was admitted")
	}
	t.Logf("probe of a plaintext mux failed after %v", time.Since(start))
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
