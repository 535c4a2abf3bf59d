package console

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/server"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Config is the console's configuration.
type Config struct {
	// MaxScanRecords bounds the records one browse request examines.
	// Default 10000.
	MaxScanRecords int
	// MaxScanBytes bounds the bytes (whole stored batches) one browse
	// request reads; the batch that crosses the bound is still read.
	// Default 8 MiB.
	MaxScanBytes int
	// MaxResults bounds the records one browse request returns. Default
	// 500.
	MaxResults int
	// MaxValueBytes is how much of a key, value or header value is shown;
	// the rest is cut and the record says so. Default 16 KiB.
	MaxValueBytes int
	// MaxTailWait bounds the long poll of the live tail. Default 20 s.
	MaxTailWait time.Duration
	// RequestTimeout bounds a request (a long poll adds its wait).
	// Default 30 s.
	RequestTimeout time.Duration
	// SessionTTL is how long a login lasts. Default 8 h.
	SessionTTL time.Duration
	// MaxSessions bounds the open logins; past it the oldest is dropped.
	// Default 10000.
	MaxSessions int
	// Logger receives the console's errors; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the default configuration.
func DefaultConfig() Config {
	return Config{MaxScanRecords: 10000, MaxScanBytes: 8 << 20, MaxResults: 500, MaxValueBytes: 16 << 10,
		MaxTailWait: 20 * time.Second, RequestTimeout: 30 * time.Second, SessionTTL: 8 * time.Hour, MaxSessions: 10000}
}

// Validate reports a setting out of bounds.
func (c Config) Validate() error {
	switch {
	case c.MaxScanRecords < 1:
		return fmt.Errorf("%w: MaxScanRecords %d, want at least 1", ErrInvalidConfig, c.MaxScanRecords)
	case c.MaxScanBytes < 1024:
		return fmt.Errorf("%w: MaxScanBytes %d, want at least 1024", ErrInvalidConfig, c.MaxScanBytes)
	case c.MaxResults < 1:
		return fmt.Errorf("%w: MaxResults %d, want at least 1", ErrInvalidConfig, c.MaxResults)
	case c.MaxValueBytes < 16:
		return fmt.Errorf("%w: MaxValueBytes %d, want at least 16", ErrInvalidConfig, c.MaxValueBytes)
	case c.MaxTailWait < 0:
		return fmt.Errorf("%w: MaxTailWait %v is negative", ErrInvalidConfig, c.MaxTailWait)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("%w: RequestTimeout %v, want more than 0", ErrInvalidConfig, c.RequestTimeout)
	case c.SessionTTL <= 0:
		return fmt.Errorf("%w: SessionTTL %v, want more than 0", ErrInvalidConfig, c.SessionTTL)
	case c.MaxSessions < 1:
		return fmt.Errorf("%w: MaxSessions %d, want at least 1", ErrInvalidConfig, c.MaxSessions)
	}
	return nil
}

// Console serves the pages and the JSON API of one node.
type Console struct {
	cfg   Config
	log   *slog.Logger
	b     *broker.Broker
	sec   *server.Security // nil: no authentication
	peers Peers
	pages map[string]*template.Template
	cop   *http.CrossOriginProtection
	mux   *http.ServeMux

	sessions *sessionStore
	logins   chan struct{} // bounds the password checks running at once
	fake     auth.Credential
	auditLim rateLimit
}

// New returns the console of broker b. sec is the node's security (the
// gRPC service's: authentication and ACLs; nil or not Required: open to
// anyone who reaches the port); peers reaches the other nodes (the node's
// own pool, with its certificate when TLS is on).
func New(cfg Config, b *broker.Broker, sec *server.Security, peers Peers) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, log: cfg.Logger, b: b, sec: sec, peers: peers,
		cop: http.NewCrossOriginProtection(), sessions: newSessionStore(cfg.SessionTTL, cfg.MaxSessions),
		logins: make(chan struct{}, runtime.GOMAXPROCS(0))}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if c.fake, err = fakeCredential(); err != nil {
		return nil, err
	}
	c.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, fmt.Errorf("%w: cross-origin request refused", ErrForbidden))
	}))
	c.mux = http.NewServeMux()
	c.routes()
	return c, nil
}

// Register serves the console on mux: the pages under /console/, the
// JSON API under /api/v1/, and / redirects to the overview. More specific
// patterns registered on mux by others (such as PUT /api/v1/log-level)
// keep their paths.
func (c *Console) Register(mux *http.ServeMux) {
	h := http.HandlerFunc(c.serve)
	mux.Handle("/console/", h)
	mux.Handle("/api/v1/", h)
	mux.Handle("GET /{$}", h)
}

// ServeHTTP serves the console alone (tests, or a mux of its own).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.serve(w, r) }

// csp is the Content-Security-Policy of every answer: scripts and styles
// from the console's own files only, no inline script, no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// serve sets the headers every answer carries, refuses cross-origin
// mutations, and hands the request to the console's routes.
func (c *Console) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if err := c.cop.Check(r); err != nil {
		c.fail(w, r, fmt.Errorf("%w: cross-origin request refused: %v", ErrForbidden, err))
		return
	}
	if !sameOrigin(r) {
		c.fail(w, r, fmt.Errorf("%w: cross-origin request refused: Origin or Sec-Fetch-Site is not this site", ErrForbidden))
		return
	}
	c.mux.ServeHTTP(w, r)
}

// sameOrigin is a second check of a mutation's origin, besides
// http.CrossOriginProtection: a browser's Sec-Fetch-Site must say
// same-origin (or none: typed by the user), and an Origin header must name
// this host. Requests without either (not from a browser) pass.
func sameOrigin(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		return o == "http://"+r.Host || o == "https://"+r.Host
	}
	return true
}

// authOn reports whether logins are required.
func (c *Console) authOn() bool { return c.sec != nil && c.sec.Required }

// audit returns the node's audit log (one that discards without one).
func (c *Console) audit() *auth.Audit {
	if c.sec == nil || c.sec.Audit == nil {
		return auth.NewAudit(nil)
	}
	return c.sec.Audit
}

// writeJSON writes v as the JSON answer.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// errorBody is the JSON answer of a failed call.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// fail answers err: as JSON on the API, as a page otherwise.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := httpStatus(err)
	if code >= 500 {
		c.log.Warn("console request failed", "path", r.URL.Path, "err", err)
	}
	if isAPI(r) {
		writeJSON(w, code, errorBody{Error: err.Error(), Status: code})
		return
	}
	c.renderError(w, r, code, err)
}

// requestContext bounds a request by the configured timeout plus extra.
func (c *Console) requestContext(r *http.Request, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), c.cfg.RequestTimeout+extra)
}

// staticFS is the embedded static files.
func staticFS() fs.FS {
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		panic(err) // the embedded tree has static/
	}
	return sub
}
