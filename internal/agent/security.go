package agent

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/cluster/mux"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/server"
	"github.com/stratalog/strata/internal/tlsutil"
)

// Limits of the client port that are not worth a setting.
const (
	// keepaliveMinTime is the shortest keepalive ping interval a client
	// may use; faster pings close its connection (GOAWAY).
	keepaliveMinTime = 10 * time.Second
	// maxConnectionIdle closes a gRPC connection without calls.
	maxConnectionIdle = 5 * time.Minute
	// admitTimeout bounds the metadata leader's check of a joining node's
	// certificate.
	admitTimeout = 5 * time.Second
)

// security is what the node's security settings build.
type security struct {
	tls   *tlsutil.Store // nil: plaintext
	audit *auth.Audit
	close io.Closer // the audit file
}

// openSecurity loads the certificates and opens the audit log.
func openSecurity(cfg Config, logger *slog.Logger) (*security, error) {
	s := &security{audit: auth.NewAudit(nil), close: io.NopCloser(nil)}
	if cfg.TLSCert != "" {
		st, err := tlsutil.Open(tlsutil.Files{CA: cfg.TLSCA, Cert: cfg.TLSCert, Key: cfg.TLSKey}, logger)
		if err != nil {
			return nil, fmt.Errorf("agent: tls: %w", err)
		}
		id, ok := st.NodeID()
		if !ok {
			return nil, fmt.Errorf("agent: tls: %s is not a node certificate (make one with: strata cert create-node %s)", cfg.TLSCert, cfg.NodeID)
		}
		if id != cfg.NodeID {
			return nil, fmt.Errorf("agent: tls: %s is the certificate of node %q, not of this node %q", cfg.TLSCert, id, cfg.NodeID)
		}
		s.tls = st
	}
	path := cfg.AuditLog
	if path == "" && cfg.Auth {
		path = filepath.Join(cfg.DataDir, "audit.log")
	}
	if path != "" && path != "-" {
		a, c, err := auth.OpenAuditFile(path)
		if err != nil {
			return nil, fmt.Errorf("agent: audit log: %w", err)
		}
		s.audit, s.close = a, c
	}
	return s, nil
}

// grpcOptions are the options of the client port: TLS, the limits and
// authentication before a request body is read (sec.Tap), and the metrics
// and slow-request log of every call (obs, before the checks so that
// refused calls count).
func (s *security) grpcOptions(cfg Config, sec *server.Security, obs *server.Observer) []grpc.ServerOption {
	opts := server.GRPCOptions()
	opts = append(opts,
		grpc.InTapHandle(sec.Tap),
		grpc.ChainUnaryInterceptor(obs.UnaryInterceptor, sec.UnaryInterceptor),
		grpc.ChainStreamInterceptor(obs.StreamInterceptor, sec.StreamInterceptor),
		grpc.ConnectionTimeout(cfg.HandshakeTimeout),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		// A connection with no call for this long is closed: an idle or
		// refused client does not hold one of MaxConnections forever.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: maxConnectionIdle}),
	)
	if s.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls.ServerConfig(tls.VerifyClientCertIfGiven))))
	}
	return opts
}

// peerDialOptions are the options of node-to-node forwarding: mutual TLS
// with the node's own certificate, which makes the receiver see node:ID.
func (s *security) peerDialOptions() []grpc.DialOption {
	if s.tls == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(s.tls.NodeClientConfig()))}
}

// limitListener caps the connections ln accepts at once.
func limitListener(ln net.Listener, n int) net.Listener {
	if n <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, n)
}

// clusterSecurity sets the cluster port's mutual TLS, the admission check
// of joining nodes and the gossip keys on nc.
func (s *security) clusterSecurity(cfg Config, nc *cluster.NodeConfig) error {
	if s.tls != nil {
		nc.ClusterTLS = &mux.ClusterTLS{Server: s.tls.NodeServerConfig(), Client: s.tls.NodeClientConfig(), PeerID: s.tls.VerifyNode}
		nc.AdmitMember = cluster.VerifyMemberTLS(nc.ClusterTLS, admitTimeout)
	}
	if cfg.GossipKeyFile != "" {
		b, err := os.ReadFile(cfg.GossipKeyFile)
		if err != nil {
			return fmt.Errorf("agent: gossip key file: %w", err)
		}
		cfg.GossipKey = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	if cfg.GossipKey != "" && nc.Gossip.BindAddr != "" {
		key, err := base64.StdEncoding.DecodeString(cfg.GossipKey)
		if err != nil {
			return fmt.Errorf("agent: gossip key is not base64: %w", err)
		}
		nc.Gossip.Keys = [][]byte{key}
		nc.Gossip.KeyringFile = filepath.Join(cfg.DataDir, "raft", "serf.keyring")
	}
	return nil
}

// warnInsecure logs, loudly, every listener reachable beyond this machine
// that anyone can use.
func warnInsecure(cfg Config, logger *slog.Logger) {
	type port struct{ name, addr, why string }
	var open []port
	if !cfg.Auth {
		open = append(open, port{"grpc", cfg.GRPCAddr, "anyone who reaches it can read, write and delete topics (--auth is off)"},
			port{"kafka", cfg.KafkaAddr, "anyone who reaches it can read and write topics (--auth is off)"})
	}
	if cfg.TLSCert == "" {
		open = append(open, port{"cluster", cfg.ClusterAddr, "anyone who reaches it can send raft traffic (no --tls-cert: no mutual TLS)"},
			port{"http", cfg.HTTPAddr, "plaintext (no --tls-cert)"})
	}
	if cfg.GossipKey == "" && cfg.GossipKeyFile == "" && cfg.GossipAddr != "" {
		open = append(open, port{"gossip", cfg.GossipAddr, "anyone who reaches it can join the cluster's gossip (no --gossip-key)"})
	}
	for _, p := range open {
		if p.addr != "" && !loopbackOnly(p.addr) {
			logger.Warn("SECURITY: "+p.name+" port listens beyond this machine unprotected: "+p.why, "addr", p.addr)
		}
	}
}

// loopbackOnly reports whether addr binds only to a loopback address.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// httpGuard serves h, with auth on, only to a client certificate whose
// principal may describe the cluster: metrics name topics and groups, and
// the profiler shows the command line. /healthz and /readyz stay open for
// probes.
func (a *Agent) httpGuard(sec *server.Security, h http.Handler) http.Handler {
	return a.httpGuardOp(sec, auth.OpDescribe, h)
}

// httpGuardOp is httpGuard for principals that may do op on the cluster.
func (a *Agent) httpGuardOp(sec *server.Security, op auth.Operation, h http.Handler) http.Handler {
	if !a.cfg.Auth {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.Anonymous
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			p = tlsutil.Principal(r.TLS.VerifiedChains[0][0])
		}
		if !sec.Allowed(p, op, auth.ResourceCluster, clusterName) {
			a.sec.audit.Denied(p, string(op), string(auth.ResourceCluster), clusterName, "http:"+r.URL.Path, r.RemoteAddr)
			http.Error(w, "forbidden: present a client certificate allowed to "+string(op)+" the cluster", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// clusterName is the name of the cluster resource in ACLs.
const clusterName = "cluster"
