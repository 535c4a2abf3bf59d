package kafka

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// Config configures the Kafka listener.
type Config struct {
	// MaxRequestBytes bounds a request's length prefix, as Kafka's
	// socket.request.max.bytes: a longer one closes the connection before
	// anything is allocated for it. Default 100 MiB.
	MaxRequestBytes int32
	// MaxInFlight is how many requests of one connection may be under way
	// at once (their responses still go out in order). Default 16.
	MaxInFlight int
	// IdleTimeout closes a connection that sends nothing for this long, as
	// Kafka's connections.max.idle.ms. Default 10 min.
	IdleTimeout time.Duration
	// AutoCreateTopics creates a topic a client produces to or asks
	// metadata for, with the broker's defaults, as Kafka's
	// auto.create.topics.enable. Default false.
	AutoCreateTopics bool
	// Security, when set, authenticates clients (SASL/SCRAM on this
	// listener) and authorizes their requests with the node's ACLs; nil
	// lets every client do everything.
	Security Security
	// HandshakeTimeout bounds a TLS handshake on a TLS listener; a peer
	// that stalls is disconnected. Default 10 s.
	HandshakeTimeout time.Duration
	// CertPrincipal, when set, names the principal of a client that
	// presents a verified certificate on a TLS listener (mTLS
	// authentication, as Kafka's SSL principal); SASL still wins.
	CertPrincipal func(*x509.Certificate) string
	// SlowRequest is the time above which a request is logged at Warn
	// with its API, duration, peer and principal; 0 logs none. Fetch,
	// JoinGroup and SyncGroup wait by design (long polls, rebalances) and
	// are never logged. Default 0 (the agent sets --slow-request).
	SlowRequest time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MaxRequestBytes: 100 << 20, MaxInFlight: 16, IdleTimeout: 10 * time.Minute, HandshakeTimeout: 10 * time.Second}
}

// Validate reports a field out of bounds.
func (c Config) Validate() error {
	switch {
	case c.MaxRequestBytes < 1<<20:
		return fmt.Errorf("%w: MaxRequestBytes %d < 1 MiB", ErrInvalidConfig, c.MaxRequestBytes)
	case c.MaxInFlight < 1:
		return fmt.Errorf("%w: MaxInFlight %d < 1", ErrInvalidConfig, c.MaxInFlight)
	case c.IdleTimeout <= 0 || c.HandshakeTimeout <= 0:
		return fmt.Errorf("%w: IdleTimeout and HandshakeTimeout must be positive", ErrInvalidConfig)
	}
	return nil
}

// Security is what the listener needs of the node's security: whether
// authentication is required, users' SCRAM credentials and ACL decisions
// (the same ones the gRPC service uses), and the audit log.
type Security interface {
	// Required reports whether clients must authenticate.
	Required() bool
	// Credential returns a user's credential for a mechanism.
	Credential(user string, m auth.Mechanism) (auth.Credential, bool)
	// Allowed reports whether principal may do op on a resource.
	Allowed(principal string, op auth.Operation, res auth.ResourceType, name string) bool
	// Audit is where failed logins and refusals go (nil: nowhere).
	Audit() *auth.Audit
}

// Sentinel errors of package kafka.
var (
	// ErrInvalidConfig is returned by Validate.
	ErrInvalidConfig = errors.New("kafka: invalid config")
	// ErrClosed is returned by Serve after Close.
	ErrClosed = errors.New("kafka: listener closed")
)

// Server is the Kafka listener of one node.
type Server struct {
	b   *broker.Broker
	cfg Config
	log *slog.Logger
	m   *metrics

	ctx    context.Context // canceled by Close: ends long polls and joins
	cancel context.CancelFunc
	coord  *coordinator // the Kafka groups this node coordinates (group.go)

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New returns a listener over b. Serve starts it.
func New(b *broker.Broker, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{b: b, cfg: cfg, log: log.With("component", "kafka"), m: newMetrics(), ctx: ctx, cancel: cancel,
		lns: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
	s.coord = &coordinator{s: s, groups: map[string]*group{}}
	return s, nil
}

// Serve accepts connections on ln until Close; it returns ErrClosed then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			return fmt.Errorf("kafka: accept: %w", err)
		}
		backoff = 5 * time.Millisecond
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every connection and waits for them. It is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	for ln := range s.lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.coord.close()
	s.wg.Wait()
	return errors.Join(errs...)
}

// defaultAdminTimeout bounds an admin action a request causes (a topic
// created for it) when the request gives no timeout.
const defaultAdminTimeout = 30 * time.Second
