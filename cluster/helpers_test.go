package cluster

import (
	"crypto/tls"
	"log/slog"
	"net"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/cluster/mux"
	"github.com/stratalog/strata/cluster/mux/muxtest"
)

// newTestMux starts a mux on 127.0.0.1:0 that the test closes.
func newTestMux(t *testing.T) *mux.Mux {
	t.Helper()
	return newTestTLSMux(t, nil, nil)
}

// newTestTLSMux starts a mux with ct (nil: plaintext) on 127.0.0.1:0 that
// the test closes.
func newTestTLSMux(t *testing.T, ct *mux.ClusterTLS, logger *slog.Logger) *mux.Mux {
	t.Helper()
	ln := mustListen(t)
	var m *mux.Mux
	if ct == nil {
		m = mux.NewMux(ln, logger)
	} else {
		var err error
		if m, err = mux.NewTLSMux(ln, ct, logger); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("mux close: %v", err)
		}
	})
	return m
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serverAddr is m's address as raft names it.
func serverAddr(m *mux.Mux) raft.ServerAddress { return raft.ServerAddress(m.Addr().String()) }

// testPKI is a certificate authority made at test time (muxtest.PKI).
type testPKI struct{ *muxtest.PKI }

func newTestPKI(t *testing.T) *testPKI { return &testPKI{muxtest.NewPKI(t)} }

// clusterTLS returns the ClusterTLS of a node presenting cert, trusting p.
func (p *testPKI) clusterTLS(cert tls.Certificate) *mux.ClusterTLS {
	server, client := p.Configs(cert)
	return &mux.ClusterTLS{Server: server, Client: client, PeerID: muxtest.PeerID}
}

// nodeTLS is the ClusterTLS of node id under p.
func (p *testPKI) nodeTLS(t *testing.T, id string) *mux.ClusterTLS {
	t.Helper()
	return p.clusterTLS(p.Leaf(t, "strata://node/"+id))
}
