package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/console"
	"github.com/stratalog/strata/internal/kafka"
	"github.com/stratalog/strata/internal/server"
)

// Agent is one running node.
type Agent struct {
	cfg Config
	log *slog.Logger

	grpcLn  net.Listener
	httpLn  net.Listener
	kafkaLn net.Listener
	sec     *security
	kafka   *kafka.Server
	node    *cluster.Node
	broker  *broker.Broker
	svc     *server.Server
	peers   *server.Peers
	rpc     *server.Observer // gRPC metrics and slow-request log (observe.go)
	grpc    *grpc.Server
	http    *http.Server

	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New starts a node: listeners first (so an address in use fails fast),
// then the raft groups, the broker, the gRPC service and the HTTP
// endpoints. It returns once the node serves. Its logs go to logger (nil
// discards them) with the node's id and each part's component
// (observe.go).
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.NodeID)
	a := &Agent{cfg: cfg, log: logger.With("component", "agent")}
	var err error
	if a.sec, err = openSecurity(cfg, logger.With("component", "tls")); err != nil {
		return nil, err
	}
	warnInsecure(cfg, a.log)
	if a.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, errors.Join(fmt.Errorf("agent: grpc listener: %w", err), a.Close())
	}
	if cfg.HTTPAddr != "" {
		if a.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, errors.Join(fmt.Errorf("agent: http listener: %w", err), a.Close())
		}
	}
	if err := a.listenKafka(); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	// live is the broker once built. The broker needs the node, so it is
	// built after OpenNode; but the metadata callback runs from OpenNode
	// on (raft's FSM goroutine after each metadata change, the node's
	// reconcile loop after it opens a data group), so it reads the broker
	// through this atomic and only through it.
	var live atomic.Pointer[broker.Broker]
	segCfg := broker.SegmentConfigs(cfg.MaxSegmentBytes, logger.With("component", "segment"))
	rc := cluster.DefaultGroupConfig()
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.HeartbeatTimeout = cfg.RaftHeartbeatTimeout
	rc.ElectionTimeout = cfg.RaftHeartbeatTimeout
	rc.LeaderLeaseTimeout = cfg.RaftHeartbeatTimeout / 2
	rc.TrailingLogs = cfg.RaftTrailingLogs
	nc := cluster.NodeConfig{
		ID:              cfg.NodeID,
		Dir:             filepath.Join(cfg.DataDir, "raft"),
		ClusterAddr:     cfg.ClusterAddr,
		GRPCAddr:        a.grpcLn.Addr().String(),
		KafkaAddr:       a.kafkaAdvertised(),
		Join:            cfg.Join,
		DataGroups:      cfg.DataGroups,
		MetadataVoters:  cfg.MetadataVoters,
		DeadNodeTimeout: cfg.DeadNodeTimeout,
		Segment:         segCfg,
		Raft:            rc,
		Logger:          logger,
		Faults:          cfg.Faults,
	}
	if cfg.GossipAddr != "" {
		nc.Gossip = cluster.DefaultMembershipConfig()
		nc.Gossip.BindAddr = cfg.GossipAddr
	}
	if err := a.advertise(&nc); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	if err := a.sec.clusterSecurity(cfg, &nc); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	a.node, err = cluster.OpenNode(ctx, nc, func() {
		if b := live.Load(); b != nil {
			b.NotifyMetadataChanged()
		}
	})
	if err != nil {
		return nil, errors.Join(err, a.Close())
	}
	if err := a.node.Start(ctx); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	bc := broker.DefaultConfig()
	bc.RetentionInterval = cfg.RetentionCheckInterval
	bc.Disk.MinFreeBytes = cfg.DiskMinFreeBytes()
	bc.MaxClusterPartitions = cfg.MaxClusterPartitions
	bc.Logger = logger.With("component", "broker")
	b, err := broker.New(bc, a.node)
	if err != nil {
		return nil, errors.Join(err, a.Close())
	}
	live.Store(b)
	a.broker = b
	a.peers = server.NewPeers(a.sec.peerDialOptions()...)
	b.SetPeers(a.peers)
	if err := b.Start(ctx); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	a.svc = server.New(b)
	sec := &server.Security{Required: cfg.Auth, Authorizer: auth.NewAuthorizer(cfg.SuperUsers), Users: b,
		Audit: a.sec.audit}
	a.svc.SetSecurity(sec)
	oc := server.DefaultObserveConfig()
	oc.SlowRequest, oc.Logger = cfg.SlowRequest, logger.With("component", "grpc")
	if a.rpc, err = server.NewObserver(oc); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	a.grpc = grpc.NewServer(a.sec.grpcOptions(cfg, sec, a.rpc)...)
	a.svc.Register(a.grpc)
	a.svc.SetServing(true)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.grpc.Serve(limitListener(a.grpcLn, cfg.MaxConnections)); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			a.log.Error("grpc server", "err", err)
		}
	}()
	if err := a.startKafka(sec, logger); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	if a.httpLn != nil {
		a.startHTTP(sec, logger)
	}
	return a, nil
}

// advertise fills the addresses other nodes and clients use: the
// advertised host with each listener's port. Gossip wants an IP, so a name
// is resolved once here.
func (a *Agent) advertise(nc *cluster.NodeConfig) error {
	host := a.cfg.AdvertiseAddr
	if host == "" {
		return nil
	}
	_, gport, _ := net.SplitHostPort(a.grpcLn.Addr().String())
	nc.GRPCAddr = net.JoinHostPort(host, gport)
	if _, cport, err := net.SplitHostPort(a.cfg.ClusterAddr); err == nil && cport != "0" {
		nc.AdvertiseClusterAddr = net.JoinHostPort(host, cport)
	}
	if nc.Gossip.BindAddr != "" {
		_, sport, err := net.SplitHostPort(nc.Gossip.BindAddr)
		if err != nil || sport == "0" {
			return fmt.Errorf("agent: an advertise address needs a fixed gossip port, not %q", nc.Gossip.BindAddr)
		}
		ip := host
		if _, err := netip.ParseAddr(host); err != nil {
			ips, err := net.LookupIP(host)
			if err != nil || len(ips) == 0 {
				return fmt.Errorf("agent: resolve advertise address %q: %w", host, err)
			}
			ip = ips[0].String()
		}
		nc.Gossip.AdvertiseAddr = net.JoinHostPort(ip, sport)
	}
	return nil
}

func (a *Agent) startHTTP(sec *server.Security, logger *slog.Logger) {
	mux := http.NewServeMux()
	a.handleObservability(mux, sec)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.broker.Ready(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	cc := console.DefaultConfig()
	cc.Logger = a.log.With("component", "console")
	if con, err := console.New(cc, a.broker, sec, a.peers); err != nil {
		a.log.Error("console", "err", err) // a bug: the defaults are valid and the pages parse
	} else {
		con.Register(mux)
	}
	if a.cfg.Pprof {
		// Registered on this mux only: importing net/http/pprof also
		// adds them to http.DefaultServeMux, which nothing here serves.
		mux.Handle("/debug/pprof/", a.httpGuard(sec, http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", a.httpGuard(sec, http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", a.httpGuard(sec, http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", a.httpGuard(sec, http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", a.httpGuard(sec, http.HandlerFunc(pprof.Trace)))
	}
	// ReadHeaderTimeout also bounds the TLS handshake (net/http).
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: a.cfg.HandshakeTimeout, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelDebug)}
	ln := a.httpLn
	if a.sec.tls != nil {
		tc := a.sec.tls.ServerConfig(tls.VerifyClientCertIfGiven)
		tc.NextProtos = []string{"h2", "http/1.1"}
		ln = tls.NewListener(ln, tc)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server", "err", err)
		}
	}()
}

// GRPCAddr is the address the gRPC service listens on.
func (a *Agent) GRPCAddr() string { return a.grpcLn.Addr().String() }

// HTTPAddr is the address of the HTTP endpoints ("" when disabled).
func (a *Agent) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// GossipAddr is the address of the serf port ("" without membership).
func (a *Agent) GossipAddr() string { return a.node.GossipAddr() }

// ClusterAddr is the address of the raft port.
func (a *Agent) ClusterAddr() string { return a.node.ClusterAddr() }

// Broker returns the node's broker.
func (a *Agent) Broker() *broker.Broker { return a.broker }

// Close stops the node in the reverse order of New: it stops taking
// requests (draining the ones under way for a few seconds), then stops
// the broker, the raft groups and the storage. It is idempotent.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		if a.svc != nil {
			a.svc.SetServing(false)
		}
		if a.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			errs = append(errs, a.http.Shutdown(ctx))
			cancel()
		} else if a.httpLn != nil {
			errs = append(errs, a.httpLn.Close())
		}
		if a.kafka != nil {
			errs = append(errs, a.kafka.Close())
		} else if a.kafkaLn != nil {
			errs = append(errs, a.kafkaLn.Close())
		}
		if a.grpc != nil {
			stopped := make(chan struct{})
			go func() { a.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(3 * time.Second):
				a.grpc.Stop() // long-polls and streams do not end by themselves
				<-stopped     // Stop makes GracefulStop return
			}
		} else if a.grpcLn != nil {
			errs = append(errs, a.grpcLn.Close())
		}
		a.wg.Wait()
		if a.broker != nil {
			errs = append(errs, a.broker.Close())
		}
		if a.peers != nil {
			errs = append(errs, a.peers.Close())
		}
		if a.node != nil {
			errs = append(errs, a.node.Close())
		}
		if a.sec != nil {
			errs = append(errs, a.sec.close.Close())
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}
