package mux

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Mutual TLS on the cluster port. Package mux holds no certificates and
// imports no certificate package: the agent builds the *tls.Config values
// (both sides present a CA-signed node certificate) and the function that
// reads a verified peer's node id, and passes them in a ClusterTLS.
//
// An accepted connection completes the TLS handshake and sends its mux
// header within the mux's header timeout (5 s), both under one deadline, in
// the connection's own handshake goroutine: a plaintext or stalled peer is
// closed after it and never reaches a layer. A dialled connection completes
// the handshake within the dial timeout raft gives (it runs over whatever
// connection the dial produced, so FaultNet still sees every byte), then
// sends the header inside TLS.

const (
	// tlsCloseTimeout bounds how long closing a TLS connection waits to
	// send close_notify before it closes the socket under it. tls.Conn.Close
	// takes the connection's write lock, which a Write blocked on a stuck
	// peer holds, and its own 5 s write deadline does not help a peer that
	// FaultNet stalls (FaultNet waits on a condition, not a deadline).
	tlsCloseTimeout = time.Second

	// tlsFailLogEvery is the least time between two warnings about failed
	// TLS handshakes on one mux; those in between are counted, so that a
	// scanner or a misconfigured peer that retries cannot flood the log.
	tlsFailLogEvery = 10 * time.Second
)

// ClusterTLS holds what the cluster port needs for mutual TLS. The agent
// builds it from the node's certificate and the cluster's CA.
type ClusterTLS struct {
	// Server is used for accepted connections. It must require and verify a
	// client certificate (ClientAuth RequireAndVerifyClientCert, or
	// RequireAnyClientCert with its own VerifyPeerCertificate or
	// VerifyConnection).
	Server *tls.Config
	// Client is used for dialled connections; it presents this node's
	// certificate and verifies the peer's. An empty ServerName is set to the
	// dialled host, as tls.Dial does.
	Client *tls.Config
	// PeerID returns the node id of a verified peer's certificate, or an
	// error when the certificate names no node. Connections whose peer has
	// no node id are closed, in both directions.
	PeerID func(tls.ConnectionState) (string, error)
}

// Validate reports whether ct can secure the cluster port; the error wraps
// ErrInvalidConfig.
func (ct *ClusterTLS) Validate() error {
	var errs []error
	if ct.Server == nil {
		errs = append(errs, errors.New("Server config is required"))
	} else {
		custom := ct.Server.VerifyPeerCertificate != nil || ct.Server.VerifyConnection != nil
		switch ct.Server.ClientAuth {
		case tls.RequireAndVerifyClientCert:
		case tls.RequireAnyClientCert:
			if !custom {
				errs = append(errs, errors.New("Server accepts any client certificate without verifying it"))
			}
		default:
			errs = append(errs, errors.New("Server must require a client certificate"))
		}
	}
	if ct.Client == nil {
		errs = append(errs, errors.New("Client config is required"))
	} else if len(ct.Client.Certificates) == 0 && ct.Client.GetClientCertificate == nil {
		errs = append(errs, errors.New("Client config has no certificate to present"))
	}
	if ct.PeerID == nil {
		errs = append(errs, errors.New("PeerID is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: cluster TLS: %w", ErrInvalidConfig, err)
	}
	return nil
}

// NewTLSMux is NewMux with mutual TLS on every connection, accepted or
// dialled. It returns an error wrapping ErrInvalidConfig (and leaves ln
// open) when ct does not validate.
func NewTLSMux(ln net.Listener, ct *ClusterTLS, logger *slog.Logger) (*Mux, error) {
	if ct == nil {
		return nil, fmt.Errorf("%w: cluster TLS: nil", ErrInvalidConfig)
	}
	if err := ct.Validate(); err != nil {
		return nil, err
	}
	return newTLSMux(ln, logger, defaultMuxHeaderTimeout, ct), nil
}

// serverTLS runs the server side of the TLS handshake on an accepted
// connection before deadline and returns the connection to read the header
// from and the peer's node id. Without TLS it returns conn unchanged. On
// error it has closed conn.
func (m *Mux) serverTLS(conn net.Conn, deadline time.Time) (net.Conn, string, error) {
	if m.tls == nil {
		return conn, "", nil
	}
	// The deadline covers the handshake's writes too: a peer that never
	// reads must not hold the goroutine.
	if err := conn.SetDeadline(deadline); err != nil {
		_ = conn.Close()
		return nil, "", fmt.Errorf("set handshake deadline: %w", err)
	}
	tc := tls.Server(conn, m.tls.Server)
	if err := tc.Handshake(); err != nil {
		_ = conn.Close() // no session to close_notify
		return nil, "", fmt.Errorf("tls handshake: %w", err)
	}
	c := &tlsConn{Conn: tc, raw: conn}
	peer, err := m.tls.PeerID(tc.ConnectionState())
	if err != nil {
		_ = c.Close()
		return nil, "", fmt.Errorf("tls peer has no node id: %w", err)
	}
	// The header read sets its own read deadline; writes are raft's.
	if err := conn.SetWriteDeadline(time.Time{}); err != nil {
		_ = c.Close()
		return nil, "", fmt.Errorf("clear write deadline: %w", err)
	}
	return c, peer, nil
}

// logTLSFailure warns about a failed handshake, at most once per
// tlsFailLogEvery; the warning counts those not logged since the last one.
func (m *Mux) logTLSFailure(remote string, err error) {
	if m.isClosed() {
		return
	}
	if ok, suppressed := m.tlsFails.allow(time.Now()); ok {
		m.logger.Warn("mux rejected connection: TLS handshake failed", "remote", remote, "err", err,
			"suppressed_since_last", suppressed)
		return
	}
	m.logger.Debug("mux rejected connection: TLS handshake failed", "remote", remote, "err", err)
}

// clientTLS runs the client side of the TLS handshake on a dialled
// connection (whose deadline the caller has set) and checks that the peer
// is a node. On error it closes conn.
func clientTLS(conn net.Conn, ct *ClusterTLS, address string) (net.Conn, string, error) {
	tc := tls.Client(conn, clientConfigFor(ct.Client, address))
	if err := tc.Handshake(); err != nil {
		_ = conn.Close()
		return nil, "", fmt.Errorf("mux: tls handshake with %s: %w", address, err)
	}
	c := &tlsConn{Conn: tc, raw: conn}
	peer, err := ct.PeerID(tc.ConnectionState())
	if err != nil {
		_ = c.Close()
		return nil, "", fmt.Errorf("mux: tls peer at %s has no node id: %w", address, err)
	}
	return c, peer, nil
}

// ClientConfig returns the client TLS config to dial address with:
// ct.Client, or a copy with ServerName set to address's host when it has
// none (crypto/tls refuses a client config with neither ServerName nor
// InsecureSkipVerify, and tls.Dial fills it in the same way).
func (ct *ClusterTLS) ClientConfig(address string) *tls.Config {
	return clientConfigFor(ct.Client, address)
}

// clientConfigFor is ClusterTLS.ClientConfig of cfg.
func clientConfigFor(cfg *tls.Config, address string) *tls.Config {
	if cfg.ServerName != "" || cfg.InsecureSkipVerify {
		return cfg
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	c := cfg.Clone()
	c.ServerName = host
	return c
}

// tlsConn is a TLS connection whose Close cannot block for longer than
// tlsCloseTimeout, whatever the peer does.
type tlsConn struct {
	*tls.Conn
	raw net.Conn // the connection under TLS (a faultConn in tests)
}

// Close sends close_notify, so that the peer's raft sees a clean EOF rather
// than an unexpected one (which it logs as an error), and closes the
// connection. If close_notify is not sent within tlsCloseTimeout, the
// connection under TLS is closed, which ends the blocked write.
func (c *tlsConn) Close() error {
	done := make(chan error, 1)
	go func() { done <- c.Conn.Close() }()
	t := time.NewTimer(tlsCloseTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		_ = c.raw.Close() // the peer is stuck; it sees a reset
		<-done
		return nil
	}
}

// logLimiter lets one event through per interval and counts the others.
type logLimiter struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether an event at now may be logged, and how many were
// suppressed since the last one that was.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
