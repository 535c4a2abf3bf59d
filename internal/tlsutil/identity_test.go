package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"testing"

	"github.com/stratalog/strata/internal/tlsutil"
)

func uris(t *testing.T, ss ...string) []*url.URL {
	t.Helper()
	var out []*url.URL
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func TestNodeIDAndPrincipal(t *testing.T) {
	tests := []struct {
		name      string
		cert      *x509.Certificate
		id        string // "" when not a node certificate
		principal string
	}{
		{"node", &x509.Certificate{Subject: pkix.Name{CommonName: "n1"}, URIs: uris(t, "strata://node/n1")}, "n1", "node:n1"},
		{"node id differs from CN", &x509.Certificate{Subject: pkix.Name{CommonName: "x"}, URIs: uris(t, "spiffe://a/b", "strata://node/n-2.b_c")}, "n-2.b_c", "node:n-2.b_c"},
		{"client", &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}}, "", "user:alice"},
		{"other URI only", &x509.Certificate{Subject: pkix.Name{CommonName: "bob"}, URIs: uris(t, "strata://user/bob")}, "", "user:bob"},
		{"two node URIs", &x509.Certificate{Subject: pkix.Name{CommonName: "c"}, URIs: uris(t, "strata://node/a", "strata://node/b")}, "", "user:c"},
		{"empty id", &x509.Certificate{Subject: pkix.Name{CommonName: "d"}, URIs: uris(t, "strata://node/")}, "", "user:d"},
		{"id with a path", &x509.Certificate{Subject: pkix.Name{CommonName: "e"}, URIs: uris(t, "strata://node/a/b")}, "", "user:e"},
		{"nil", nil, "", "user:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := tlsutil.NodeID(tt.cert)
			if id != tt.id || ok != (tt.id != "") {
				t.Fatalf("NodeID = %q, %v; want %q", id, ok, tt.id)
			}
			if p := tlsutil.Principal(tt.cert); p != tt.principal {
				t.Fatalf("Principal = %q, want %q", p, tt.principal)
			}
		})
	}
}

func TestPeerNodeID(t *testing.T) {
	node := &x509.Certificate{URIs: uris(t, "strata://node/n7")}
	client := &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}}
	tests := []struct {
		name string
		cs   tls.ConnectionState
		id   string
		err  error
	}{
		{"verified node", tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{node}}}, "n7", nil},
		{"verified client", tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{client}}}, "", tlsutil.ErrNotNode},
		{"unverified node", tls.ConnectionState{PeerCertificates: []*x509.Certificate{node}}, "", tlsutil.ErrNotVerified},
		{"nothing", tls.ConnectionState{}, "", tlsutil.ErrNotVerified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tlsutil.PeerNodeID(tt.cs)
			if id != tt.id || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("PeerNodeID = %q, %v; want %q, %v", id, err, tt.id, tt.err)
			}
		})
	}
}
