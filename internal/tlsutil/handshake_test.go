package tlsutil_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/tlsutil"
	"github.com/stratalog/strata/internal/tlsutil/tlstest"
)

// TestServerConfigClientCerts: a server that requires client certificates
// accepts one from its CA and refuses none or one from another CA.
func TestServerConfigClientCerts(t *testing.T) {
	ca, other := tlstest.NewCA(t), tlstest.NewCA(t)
	srv := open(t, ca.Node(t, "n1"), nil)
	addr, results := serve(t, srv.ServerConfig(tls.RequireAndVerifyClientCert))

	alice := ca.Client(t, "alice")
	mallory := other.Client(t, "mallory")
	mallory.CA = ca.CertFile // trusts the server, but the server does not trust it
	tests := []struct {
		name      string
		files     tlsutil.Files
		principal string // "" when refused
		serverErr string
	}{
		{"client of the CA", alice, "user:alice", ""},
		{"node of the CA", ca.Node(t, "n2"), "node:n2", ""},
		{"no certificate", tlsutil.Files{CA: ca.CertFile}, "", "client didn't provide a certificate"},
		{"client of another CA", mallory, "", "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := open(t, tt.files, nil)
			cs, err := dial(t, addr, cl.ClientConfig(""))
			r := serverSide(t, results)
			if tt.principal == "" {
				if err == nil || r.err == nil {
					t.Fatalf("handshake accepted (client err %v, server err %v)", err, r.err)
				}
				if !strings.Contains(r.err.Error(), tt.serverErr) {
					t.Fatalf("server error %q, want it to mention %q", r.err, tt.serverErr)
				}
				return
			}
			if err != nil || r.err != nil {
				t.Fatalf("handshake failed: client %v, server %v", err, r.err)
			}
			if cs.Version < tls.VersionTLS12 {
				t.Fatalf("version %x", cs.Version)
			}
			if got := tlsutil.Principal(r.cs.VerifiedChains[0][0]); got != tt.principal {
				t.Fatalf("principal %q, want %q", got, tt.principal)
			}
		})
	}
}

// TestTLS11Refused: a client that offers at most TLS 1.1 cannot connect.
// Go's client does offer TLS 1.1 when MaxVersion says so; the server
// answers with a protocol_version alert.
func TestTLS11Refused(t *testing.T) {
	ca := tlstest.NewCA(t)
	srv := open(t, ca.Node(t, "n1"), nil)
	addr, results := serve(t, srv.ServerConfig(tls.NoClientCert))
	cl := open(t, tlsutil.Files{CA: ca.CertFile}, nil)

	cfg := cl.ClientConfig("")
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	_, err := dial(t, addr, cfg)
	r := serverSide(t, results)
	if err == nil || r.err == nil {
		t.Fatalf("TLS 1.1 handshake accepted (client err %v, server err %v)", err, r.err)
	}
	if !strings.Contains(err.Error(), "protocol version not supported") {
		t.Fatalf("client error %q, want a protocol_version alert", err)
	}
	if !strings.Contains(r.err.Error(), "unsupported versions") {
		t.Fatalf("server error %q, want unsupported versions", r.err)
	}

	// The same client capped at TLS 1.2 connects, so it was the version.
	cfg.MaxVersion, cfg.MinVersion = tls.VersionTLS12, tls.VersionTLS12
	if _, err := dial(t, addr, cfg); err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	if r := serverSide(t, results); r.err != nil || r.cs.Version != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2 server side: version %x, err %v", r.cs.Version, r.err)
	}
}

// TestNodePortMutualTLS: on the cluster port both sides must present a
// node certificate of the CA.
func TestNodePortMutualTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t), tlstest.NewCA(t)
	n1 := open(t, ca.Node(t, "n1"), nil)
	n2 := open(t, ca.Node(t, "n2"), nil)

	t.Run("node to node", func(t *testing.T) {
		addr, results := serve(t, n1.NodeServerConfig())
		cs, err := dial(t, addr, n2.NodeClientConfig())
		r := serverSide(t, results)
		if err != nil || r.err != nil {
			t.Fatalf("handshake failed: client %v, server %v", err, r.err)
		}
		if id, err := tlsutil.PeerNodeID(r.cs); err != nil || id != "n2" {
			t.Fatalf("server side PeerNodeID = %q, %v; want n2", id, err)
		}
		// The dialing side verified by itself: crypto/tls has no chain.
		if _, err := tlsutil.PeerNodeID(cs); !errors.Is(err, tlsutil.ErrNotVerified) {
			t.Fatalf("client side PeerNodeID error %v, want ErrNotVerified", err)
		}
		if id, err := n2.VerifyNode(cs); err != nil || id != "n1" {
			t.Fatalf("client side VerifyNode = %q, %v; want n1", id, err)
		}
	})

	t.Run("client certificate refused by the node server", func(t *testing.T) {
		addr, results := serve(t, n1.NodeServerConfig())
		alice := open(t, ca.Client(t, "alice"), nil)
		_, err := dial(t, addr, alice.NodeClientConfig())
		r := serverSide(t, results)
		if err == nil || !errors.Is(r.err, tlsutil.ErrNotNode) {
			t.Fatalf("client err %v, server err %v; want refused with ErrNotNode", err, r.err)
		}
	})

	t.Run("node server with a client certificate refused", func(t *testing.T) {
		alice := open(t, ca.Client(t, "alice"), nil)
		addr, results := serve(t, alice.NodeServerConfig())
		_, err := dial(t, addr, n2.NodeClientConfig())
		serverSide(t, results)
		if !errors.Is(err, tlsutil.ErrNotVerified) || !strings.Contains(err.Error(), "key usage") {
			t.Fatalf("client err %v; want a key usage verification error", err)
		}
	})

	t.Run("node of another CA refused both ways", func(t *testing.T) {
		stranger := other.Node(t, "n3")
		stranger.CA = ca.CertFile
		n3 := open(t, stranger, nil)
		addr, results := serve(t, n1.NodeServerConfig())
		if _, err := dial(t, addr, n3.NodeClientConfig()); err == nil {
			t.Fatal("a node of another CA was accepted by the node server")
		}
		if r := serverSide(t, results); r.err == nil || !strings.Contains(r.err.Error(), "unknown authority") {
			t.Fatalf("server err %v, want unknown authority", r.err)
		}
		addr, results = serve(t, n3.NodeServerConfig())
		_, err := dial(t, addr, n1.NodeClientConfig())
		serverSide(t, results)
		if !errors.Is(err, tlsutil.ErrNotVerified) || !strings.Contains(err.Error(), "unknown authority") {
			t.Fatalf("client err %v, want unknown authority", err)
		}
	})
}
