package client

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
)

// Config is the configuration of a Client.
type Config struct {
	// ClientID names this client to the brokers (group members carry it).
	// Default "strata-go".
	ClientID string
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// DialOptions are passed to grpc.NewClient for every node. When they
	// hold no transport credentials the connection is plaintext.
	DialOptions []grpc.DialOption
	// TLS, when set, encrypts every connection and verifies the brokers'
	// certificates (and presents a client certificate, if it holds one,
	// for mTLS authentication). Default nil: plaintext.
	TLS *tls.Config
	// Username and Password authenticate every call (checked by the broker
	// against the user's SCRAM credential); they need TLS. Default none.
	Username string
	Password string
	// MaxRetries is how many times a request that failed with a retriable
	// error (Unavailable, NotLeader) is sent again. Default 10.
	MaxRetries int
	// RetryBackoff is the wait before the first retry; it doubles (with
	// jitter) up to MaxRetryBackoff. Defaults 50 ms and 2 s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// MetadataMaxAge is how long a topic's cached metadata is used before
	// it is read again; errors refresh it sooner. Default 5 minutes.
	MetadataMaxAge time.Duration
	// MaxMessageBytes bounds a gRPC message either way, so fetches larger
	// than gRPC's 4 MiB default go through. Default 64 MiB.
	MaxMessageBytes int
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		ClientID:        "strata-go",
		MaxRetries:      10,
		RetryBackoff:    50 * time.Millisecond,
		MaxRetryBackoff: 2 * time.Second,
		MetadataMaxAge:  5 * time.Minute,
		MaxMessageBytes: 64 << 20,
	}
}

// Validate reports a field out of bounds.
func (c Config) Validate() error {
	switch {
	case c.MaxRetries < 0:
		return fmt.Errorf("%w: MaxRetries %d < 0", ErrInvalidConfig, c.MaxRetries)
	case c.RetryBackoff <= 0 || c.MaxRetryBackoff < c.RetryBackoff:
		return fmt.Errorf("%w: RetryBackoff %v, MaxRetryBackoff %v", ErrInvalidConfig, c.RetryBackoff, c.MaxRetryBackoff)
	case c.MetadataMaxAge <= 0:
		return fmt.Errorf("%w: MetadataMaxAge %v", ErrInvalidConfig, c.MetadataMaxAge)
	case c.Username != "" && c.TLS == nil:
		return fmt.Errorf("%w: a user and password need TLS (set TLS)", ErrInvalidConfig)
	case c.MaxMessageBytes < 1<<20:
		return fmt.Errorf("%w: MaxMessageBytes %d < 1 MiB", ErrInvalidConfig, c.MaxMessageBytes)
	}
	return nil
}

// Option changes the Config that Dial uses.
type Option func(*Config)

// WithConfig replaces the whole Config (later options still apply).
func WithConfig(cfg Config) Option { return func(c *Config) { *c = cfg } }

// WithLogger sets Config.Logger.
func WithLogger(l *slog.Logger) Option { return func(c *Config) { c.Logger = l } }

// WithClientID sets Config.ClientID.
func WithClientID(id string) Option { return func(c *Config) { c.ClientID = id } }

// WithDialOptions appends gRPC dial options (credentials, interceptors).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *Config) { c.DialOptions = append(c.DialOptions, opts...) }
}

// WithTLS sets Config.TLS.
func WithTLS(cfg *tls.Config) Option { return func(c *Config) { c.TLS = cfg } }

// WithUser sets Config.Username and Config.Password.
func WithUser(user, password string) Option {
	return func(c *Config) { c.Username, c.Password = user, password }
}

// WithRetries sets Config.MaxRetries and Config.RetryBackoff.
func WithRetries(maxRetries int, backoff time.Duration) Option {
	return func(c *Config) {
		c.MaxRetries, c.RetryBackoff = maxRetries, backoff
		c.MaxRetryBackoff = max(c.MaxRetryBackoff, backoff)
	}
}

// discard is the logger used when none is given.
var discard = slog.New(slog.DiscardHandler)

func loggerOr(l *slog.Logger) *slog.Logger {
	if l == nil {
		return discard
	}
	return l
}
