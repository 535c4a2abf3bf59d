package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// ServerConfig returns the configuration of a client-facing listener (gRPC,
// HTTP). Each handshake gets, through GetConfigForClient, the current
// certificate and, when clientAuth verifies client certificates, the
// current CA pool; without a CA such handshakes fail with ErrNoCA. NextProtos
// set on the returned config before it is used are carried into each
// handshake (grpc-go adds h2 itself).
func (s *Store) ServerConfig(clientAuth tls.ClientAuthType) *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.current()
		if m.cert == nil {
			return nil, ErrNoCert
		}
		cfg := &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*m.cert},
			ClientAuth:   clientAuth,
			NextProtos:   base.NextProtos,
		}
		if clientAuth >= tls.VerifyClientCertIfGiven {
			if m.pool == nil {
				return nil, ErrNoCA
			}
			cfg.ClientCAs = m.pool
			cfg.SessionTicketsDisabled = true
		}
		return cfg, nil
	}
	return base
}

// ClientConfig returns the configuration of a client of a client-facing
// port: crypto/tls verifies the server's chain against the CA pool current
// now and its host name against serverName (when empty, tls.Dial and
// grpc-go use the dialed host). The Store's certificate, if any, is
// presented when the server asks. Without a CA the system roots are used.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		ServerName:           serverName,
		RootCAs:              s.current().pool,
		GetClientCertificate: s.getClientCertificate,
	}
}

// getClientCertificate presents the current certificate, or none.
func (s *Store) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if m := s.current(); m.cert != nil {
		return m.cert, nil
	}
	return &tls.Certificate{}, nil
}

// NodeServerConfig returns the configuration of the cluster port's
// listener: the client must present a node certificate that chains to the
// current CA pool with the ClientAuth usage.
func (s *Store) NodeServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The per-handshake config below decides; this one says the same
		// for whoever inspects it (mux.ClusterTLS.Validate).
		ClientAuth: tls.RequireAndVerifyClientCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.current()
			if m.cert == nil {
				return nil, ErrNoCert
			}
			if m.pool == nil {
				return nil, ErrNoCA
			}
			return &tls.Config{
				MinVersion:             tls.VersionTLS12,
				Certificates:           []tls.Certificate{*m.cert},
				ClientAuth:             tls.RequireAndVerifyClientCert,
				ClientCAs:              m.pool,
				SessionTicketsDisabled: true,
				VerifyConnection: func(cs tls.ConnectionState) error {
					_, err := PeerNodeID(cs)
					return err
				},
			}, nil
		},
	}
}

// NodeClientConfig returns the configuration of a dialer of the cluster
// port. Host names are not verified (nodes dial advertised addresses):
// the server must present a node certificate that chains to the current
// CA pool with the ServerAuth usage, which VerifyConnection checks. The
// Store's certificate is presented; without one the dial fails with
// ErrNoCert.
func (s *Store) NodeClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// InsecureSkipVerify only turns off crypto/tls's own verification,
		// which would check a host name; VerifyConnection verifies the chain.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if m := s.current(); m.cert != nil {
				return m.cert, nil
			}
			return nil, ErrNoCert
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := s.verifyNode(cs, x509.ExtKeyUsageServerAuth)
			return err
		},
	}
}

// VerifyNode verifies the peer's certificates of a connection against the
// current CA pool, as a server certificate (ServerAuth usage, no host
// name), and returns its node id. It is for the dialing side of the
// cluster port, where PeerNodeID has no verified chain to read; the
// handshake with NodeClientConfig has already made the same check.
func (s *Store) VerifyNode(cs tls.ConnectionState) (string, error) {
	return s.verifyNode(cs, x509.ExtKeyUsageServerAuth)
}

func (s *Store) verifyNode(cs tls.ConnectionState, usage x509.ExtKeyUsage) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", fmt.Errorf("%w: no peer certificate", ErrNotVerified)
	}
	m := s.current()
	if m.pool == nil {
		return "", ErrNoCA
	}
	opts := x509.VerifyOptions{
		Roots:         m.pool,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   time.Now(),
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(opts); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrNotVerified, Principal(leaf), err)
	}
	id, ok := NodeID(leaf)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNotNode, Principal(leaf))
	}
	return id, nil
}
