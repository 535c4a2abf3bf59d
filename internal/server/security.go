package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/tlsutil"
)

// UserStore is where Security finds credentials and rules: the broker's
// copy of the metadata.
type UserStore interface {
	UserCredential(name string, m auth.Mechanism) (auth.Credential, bool)
	ACLs() ([]auth.ACL, uint64)
	SecurityVersion() uint64
	// IsNode reports whether id is a node of the cluster now: only those
	// may act as nodes (a removed node's certificate may not).
	IsNode(id string) bool
	// TopicNames lists the topics, for checks on "any topic".
	TopicNames() []string
}

// Security authenticates and authorizes the calls of the gRPC service.
//
// Authentication happens in a tap handle (Tap), on the transport's headers
// before a request body is read: a client certificate verified by TLS
// gives the principal of its certificate (user:CN, or node:ID for a node
// certificate); an "authorization: Basic …" header, accepted only over
// TLS, gives user:NAME once the password matches the user's SCRAM
// credential. With Required, a call with neither is refused with
// Unauthenticated (the health check excepted, for probes).
//
// Authorization happens in the interceptors (UnaryInterceptor,
// StreamInterceptor): each request needs the checks checksFor names; nodes
// (node:ID) may do anything, since they forward what they authorized
// themselves. A refusal is PermissionDenied, whether or not the resource
// exists.
type Security struct {
	// Required turns authentication and ACLs on. Off, every call is
	// allowed and only identified (WhoAmI).
	Required bool
	// Authorizer decides (super-users, deny wins, default deny).
	Authorizer *auth.Authorizer
	// Users holds the credentials and the rules.
	Users UserStore
	// Audit records failed logins, denials and admin changes; nil: none.
	Audit *auth.Audit

	seen atomic.Uint64 // the security version the Authorizer was loaded at

	mu        sync.Mutex
	verified  map[[32]byte]verdict // successful password checks, by keyed hash of user and password
	failed    map[[32]byte]verdict // failed ones, kept apart so a flood cannot evict the good
	hashKey   []byte               // random per process: the cache keys are not plain hashes
	fake      *auth.Credential     // checked for unknown users, so they cost as much as real ones
	verifySem chan struct{}        // bounds the password checks running at once
	auditLim  rateLimit            // failed-login and denial lines per second
}

// verdict is a cached password check, valid while the security version
// it was made at holds.
type verdict struct {
	ok      bool
	version uint64
}

// maxVerified bounds the password-check cache; past it the cache restarts.
const maxVerified = 10000

// identity is who a call comes from, set by Tap.
type identity struct {
	principal string
	mechanism string // mtls, password or none
	remote    string
}

type identityKey struct{}

// Errors of authentication, as the client sees them.
var (
	errNoCredentials = refuse(errUnauthenticated, "authentication required: present a client certificate or a user and password")
	errBadPassword   = refuse(errUnauthenticated, "authentication failed: unknown user or wrong password")
	errPlainPassword = refuse(errUnauthenticated, "password authentication needs TLS: the password would cross the network in clear")
)

// rateLimit lets through at most perSecond events a second and counts the
// ones it drops.
type rateLimit struct {
	mu      sync.Mutex
	second  int64
	n       int
	dropped int
}

// allow reports whether an event may be recorded now, and how many were
// dropped since the last one that was.
func (l *rateLimit) allow(perSecond int) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now().Unix()
	if now != l.second {
		l.second, l.n = now, 0
	}
	if l.n >= perSecond {
		l.dropped++
		return false, 0
	}
	l.n++
	d := l.dropped
	l.dropped = 0
	return true, d
}

// auditLinesPerSecond bounds the failed-login and denial lines, so that a
// flood of bad requests cannot fill the disk; admin changes are never
// dropped.
const auditLinesPerSecond = 50

// Tap implements tap.ServerInHandle.
func (s *Security) Tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	id, err := s.identify(ctx, info.Header)
	if err != nil {
		return ctx, err
	}
	if s.Required && id.principal == auth.Anonymous && !publicMethod(info.FullMethodName) {
		return ctx, errNoCredentials
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

// publicMethod is a method anyone may call: the health check (not Watch,
// whose stream would keep an anonymous connection open).
func publicMethod(m string) bool {
	return m == healthpb.Health_Check_FullMethodName
}

func (s *Security) identify(ctx context.Context, md metadata.MD) (identity, error) {
	id := identity{principal: auth.Anonymous, mechanism: "none"}
	var tlsInfo *credentials.TLSInfo
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			id.remote = p.Addr.String()
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			tlsInfo = &ti
		}
	}
	if h := md.Get("authorization"); len(h) > 0 {
		user, pass, ok := parseBasic(h[0])
		if !ok {
			s.loginFailed("?", id.remote, "malformed authorization header")
			return id, refuse(errUnauthenticated, "malformed authorization header: want Basic base64(user:password)")
		}
		if tlsInfo == nil {
			s.loginFailed(user, id.remote, "password without TLS")
			return id, errPlainPassword
		}
		ok, err := s.checkPassword(user, pass)
		if err != nil {
			return id, err
		}
		if !ok {
			s.loginFailed(user, id.remote, "unknown user or wrong password")
			return id, errBadPassword
		}
		id.principal, id.mechanism = "user:"+user, "password"
		return id, nil
	}
	if tlsInfo != nil && len(tlsInfo.State.VerifiedChains) > 0 && len(tlsInfo.State.VerifiedChains[0]) > 0 {
		id.principal, id.mechanism = tlsutil.Principal(tlsInfo.State.VerifiedChains[0][0]), "mtls"
	}
	return id, nil
}

func parseBasic(h string) (user, pass string, ok bool) {
	const prefix = "basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(b), ":")
	return user, pass, ok && user != ""
}

// errBusy refuses a login while too many password checks run.
var errBusy = refuse(errBusyNode, "too many logins in progress; retry")

// checkPassword verifies a password against the user's stored SCRAM
// credential. The check costs a PBKDF2 (thousands of hashes): its answer
// is cached until a user or rule changes (successes and failures apart),
// at most GOMAXPROCS checks run at once (more are refused, retryably),
// and an unknown user costs the same as a known one.
func (s *Security) checkPassword(user, pass string) (bool, error) {
	s.mu.Lock()
	if s.hashKey == nil {
		s.initLocked()
	}
	mac := hmac.New(sha256.New, s.hashKey)
	fmt.Fprintf(mac, "%d:%s:%s", len(user), user, pass)
	var key [32]byte
	copy(key[:], mac.Sum(nil))
	v := s.Users.SecurityVersion()
	if c, ok := s.verified[key]; ok && c.version == v {
		s.mu.Unlock()
		return true, nil
	}
	if c, ok := s.failed[key]; ok && c.version == v {
		s.mu.Unlock()
		return false, nil
	}
	fake := s.fake
	s.mu.Unlock()
	select {
	case s.verifySem <- struct{}{}:
		defer func() { <-s.verifySem }()
	default:
		return false, errBusy
	}
	cred, found := s.Users.UserCredential(user, auth.ScramSHA256)
	if !found {
		cred, found = s.Users.UserCredential(user, auth.ScramSHA512)
	}
	if !found {
		cred = *fake
	}
	ok := cred.Verify(pass) && found
	s.mu.Lock()
	m := &s.failed
	if ok {
		m = &s.verified
	}
	if len(*m) >= maxVerified {
		*m = map[[32]byte]verdict{}
	}
	(*m)[key] = verdict{ok: ok, version: v}
	s.mu.Unlock()
	return ok, nil
}

// initLocked makes the password cache's key, the fake credential and the
// check semaphore. Caller must hold s.mu.
func (s *Security) initLocked() {
	s.hashKey = make([]byte, 32)
	_, _ = rand.Read(s.hashKey)
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	c, err := auth.NewCredential(auth.ScramSHA256, fmt.Sprintf("%x", pw), auth.DefaultIterations)
	if err != nil {
		panic(err) // fixed, valid arguments
	}
	s.fake = &c
	s.verified, s.failed = map[[32]byte]verdict{}, map[[32]byte]verdict{}
	s.verifySem = make(chan struct{}, runtime.GOMAXPROCS(0))
}

// loginFailed audits a failed login, rate-limited, with the claimed user
// name cut short.
func (s *Security) loginFailed(user, remote, reason string) {
	if len(user) > 64 {
		user = user[:64] + "..."
	}
	ok, dropped := s.auditLim.allow(auditLinesPerSecond)
	if !ok {
		return
	}
	if dropped > 0 {
		reason = fmt.Sprintf("%s (and %d failed logins or denials not logged)", reason, dropped)
	}
	s.audit().LoginFailed("user:"+user, "password", remote, reason)
}

func (s *Security) audit() *auth.Audit {
	if s == nil || s.Audit == nil {
		return auth.NewAudit(nil)
	}
	return s.Audit
}

// identityOf returns the identity Tap gave the call.
func identityOf(ctx context.Context) identity {
	if id, ok := ctx.Value(identityKey{}).(identity); ok {
		return id
	}
	return identity{principal: auth.Anonymous, mechanism: "none"}
}

// allowed reports whether the caller may do op on a resource.
func (s *Security) allowed(ctx context.Context, op auth.Operation, res auth.ResourceType, name string) bool {
	return s.Allowed(identityOf(ctx).principal, op, res, name)
}

// Allowed reports whether principal may do op on a resource: always when
// security is not required, and for nodes; otherwise as the ACLs say (the
// Kafka listener asks too).
func (s *Security) Allowed(p string, op auth.Operation, res auth.ResourceType, name string) bool {
	if s == nil || !s.Required {
		return true
	}
	if id, ok := strings.CutPrefix(p, "node:"); ok {
		return s.Users.IsNode(id)
	}
	if v := s.Users.SecurityVersion(); v != s.seen.Load() {
		acls, v := s.Users.ACLs()
		s.Authorizer.Update(acls, v)
		s.seen.Store(v)
	}
	return s.Authorizer.Authorize(p, op, res, name)
}

// authorize runs the checks req needs.
func (s *Security) authorize(ctx context.Context, method string, req any) error {
	if s == nil || !s.Required {
		return nil
	}
	cs, ok := checksFor(req)
	if !ok {
		return refuse(errPermissionDenied, "%s: no authorization rule for this call", method)
	}
	for _, c := range cs {
		if c.anyName {
			if s.allowedAny(ctx, c.op, c.res) {
				continue
			}
			return s.deny(ctx, method, c.op, c.res, "*")
		}
		if !s.allowed(ctx, c.op, c.res, c.name) {
			return s.deny(ctx, method, c.op, c.res, c.name)
		}
	}
	return nil
}

// allowedAny reports whether the caller may do op on some topic (or on
// the cluster).
func (s *Security) allowedAny(ctx context.Context, op auth.Operation, res auth.ResourceType) bool {
	if s.allowed(ctx, op, auth.ResourceCluster, clusterResource) {
		return true
	}
	for _, name := range s.Users.TopicNames() {
		if s.allowed(ctx, op, res, name) {
			return true
		}
	}
	return false
}

// require is a check made inside a handler (on a resource the request
// does not name).
func (s *Security) require(ctx context.Context, method string, op auth.Operation, res auth.ResourceType, name string) error {
	if s == nil || !s.Required || s.allowed(ctx, op, res, name) {
		return nil
	}
	return s.deny(ctx, method, op, res, name)
}

// deny audits a refusal (rate-limited) and returns PermissionDenied.
func (s *Security) deny(ctx context.Context, method string, op auth.Operation, res auth.ResourceType, name string) error {
	id := identityOf(ctx)
	if ok, _ := s.auditLim.allow(auditLinesPerSecond); ok {
		s.audit().Denied(id.principal, string(op), string(res), name, method, id.remote)
	}
	return refuse(errPermissionDenied, "%s may not %s %s %q", id.principal, op, res, name)
}

// UnaryInterceptor authorizes a unary call and audits admin changes. Put
// it after the interceptors of GRPCOptions.
func (s *Security) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if publicMethod(info.FullMethod) {
		return handler(ctx, req)
	}
	if err := s.authorize(ctx, info.FullMethod, req); err != nil {
		return nil, err
	}
	resp, err := handler(ctx, req)
	if action, target := adminAction(req); action != "" && s.Audit != nil {
		id := identityOf(ctx)
		s.Audit.AdminChange(id.principal, action, target, id.remote, err)
	}
	return resp, err
}

// StreamInterceptor authorizes each message of a client stream
// (ProduceStream) as it arrives, and refuses streams of other services
// (reflection) to anonymous callers when security is required.
func (s *Security) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !s.Required {
		return handler(srv, ss)
	}
	return handler(srv, &authzStream{ServerStream: ss, s: s, method: info.FullMethod})
}

// authzStream checks every message received on a stream.
type authzStream struct {
	grpc.ServerStream
	s      *Security
	method string
}

func (a *authzStream) RecvMsg(m any) error {
	if err := a.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if _, known := checksFor(m); !known && !strings.HasPrefix(a.method, "/strata.") {
		return nil // another service's messages (reflection): authentication suffices
	}
	return a.s.authorize(a.ServerStream.Context(), a.method, m)
}
