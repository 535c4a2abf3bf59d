package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/stratalog/strata/internal/agent"
)

func runServer(ctx context.Context, args []string) error {
	cfg := agent.DefaultConfig()
	fs := flag.NewFlagSet("strata server", flag.ContinueOnError)
	sf := registerServerFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if err := sf.resolve(fs, &cfg); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*sf.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	logger, err := newLogger(&cfg)
	if err != nil {
		return err
	}
	a, err := agent.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "strata: node %s serving\n  grpc    %s\n  kafka   %s\n  gossip  %s\n  http    %s\n  cluster %s\n  data    %s\n",
		cfg.NodeID, a.GRPCAddr(), a.KafkaAddr(), a.GossipAddr(), a.HTTPAddr(), a.ClusterAddr(), cfg.DataDir)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "strata: shutting down")
	if err := a.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(os.Stderr, "strata: stopped")
	return nil
}

// serverFlags are the flags of `strata server` that are not fields of
// agent.Config as they are.
type serverFlags struct {
	configFile, join, superUsers, cpuProfile *string
	maxStreams                               *uint
}

// registerServerFlags registers the flags of `strata server`; those that
// are fields of cfg set them.
func registerServerFlags(fs *flag.FlagSet, cfg *agent.Config) *serverFlags {
	configFile := fs.String("config", os.Getenv("STRATA_CONFIG"), "YAML config file (env STRATA_CONFIG)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for all the node's data (env STRATA_DATA_DIR)")
	fs.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "node id, unique in the cluster (env STRATA_NODE_ID)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "client API address (env STRATA_GRPC_ADDR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "web console, metrics and health address; empty disables (env STRATA_HTTP_ADDR)")
	fs.StringVar(&cfg.ClusterAddr, "cluster-addr", cfg.ClusterAddr, "raft address (env STRATA_CLUSTER_ADDR)")
	fs.StringVar(&cfg.KafkaAddr, "kafka-addr", cfg.KafkaAddr, "Kafka wire-protocol listener; empty disables (env STRATA_KAFKA_ADDR)")
	fs.BoolVar(&cfg.KafkaAutoCreateTopics, "kafka-auto-create-topics", cfg.KafkaAutoCreateTopics, "create topics Kafka clients produce to or ask for (env STRATA_KAFKA_AUTO_CREATE_TOPICS)")
	fs.StringVar(&cfg.GossipAddr, "gossip-addr", cfg.GossipAddr, "serf membership address (env STRATA_GOSSIP_ADDR)")
	join := fs.String("join", "", "comma-separated gossip addresses (host:port) of members to join (env STRATA_JOIN)")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise-addr", cfg.AdvertiseAddr, "host other nodes and clients reach this node at (env STRATA_ADVERTISE_ADDR)")
	fs.IntVar(&cfg.MetadataVoters, "metadata-voters", cfg.MetadataVoters, "voters of the metadata group: 1, 3 or 5 (env STRATA_METADATA_VOTERS)")
	fs.DurationVar(&cfg.DeadNodeTimeout, "dead-node-timeout", cfg.DeadNodeTimeout, "remove a node failed this long; 0 never (env STRATA_DEAD_NODE_TIMEOUT)")
	fs.IntVar(&cfg.DataGroups, "data-groups", cfg.DataGroups, "data raft groups per node (env STRATA_DATA_GROUPS)")
	fs.Int64Var(&cfg.MaxSegmentBytes, "max-segment-bytes", cfg.MaxSegmentBytes, "segment size before a roll (env STRATA_MAX_SEGMENT_BYTES)")
	fs.Int64Var(&cfg.MinFreeDiskBytes, "min-free-disk-bytes", cfg.MinFreeDiskBytes, "refuse produces (retryably) below this much free disk; 0: max(64 MiB, 2 x max-segment-bytes), <0: never (env STRATA_MIN_FREE_DISK_BYTES)")
	fs.DurationVar(&cfg.RetentionCheckInterval, "retention-check-interval", cfg.RetentionCheckInterval, "how often retention runs (env STRATA_RETENTION_CHECK_INTERVAL)")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", cfg.SnapshotThreshold, "raft entries between checkpoints (env STRATA_SNAPSHOT_THRESHOLD)")
	fs.DurationVar(&cfg.RaftHeartbeatTimeout, "raft-heartbeat-timeout", cfg.RaftHeartbeatTimeout, "raft leader-loss detection; elections follow within 1-2x (env STRATA_RAFT_HEARTBEAT_TIMEOUT)")
	fs.Uint64Var(&cfg.RaftTrailingLogs, "raft-trailing-logs", cfg.RaftTrailingLogs, "raft entries kept after a snapshot (env STRATA_RAFT_TRAILING_LOGS)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error; PUT /api/v1/log-level changes it at run time (env STRATA_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json (env STRATA_LOG_FORMAT)")
	fs.DurationVar(&cfg.SlowRequest, "slow-request", cfg.SlowRequest, "log gRPC calls and Kafka requests slower than this, long-poll waits aside; 0: none (env STRATA_SLOW_REQUEST)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "node certificate (PEM, from strata cert create-node): TLS on gRPC and HTTP, mutual TLS on the cluster port (env STRATA_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "key (PEM) of --tls-cert (env STRATA_TLS_KEY)")
	fs.StringVar(&cfg.TLSCA, "tls-ca", cfg.TLSCA, "CA certificate (PEM) that signs nodes and clients (env STRATA_TLS_CA)")
	fs.BoolVar(&cfg.Auth, "auth", cfg.Auth, "require authentication (client certificate or user and password) and apply ACLs; needs TLS (env STRATA_AUTH)")
	superUsers := fs.String("super-users", "", "comma-separated principals allowed everything, e.g. user:admin (env STRATA_SUPER_USERS)")
	fs.StringVar(&cfg.AuditLog, "audit-log", cfg.AuditLog, "JSON audit log file; default DATA_DIR/audit.log with --auth; - for none (env STRATA_AUDIT_LOG)")
	fs.StringVar(&cfg.GossipKey, "gossip-key", cfg.GossipKey, "gossip encryption key, base64 (strata cluster gossip-key generate) (env STRATA_GOSSIP_KEY)")
	fs.StringVar(&cfg.GossipKeyFile, "gossip-key-file", cfg.GossipKeyFile, "file holding the gossip key (env STRATA_GOSSIP_KEY_FILE)")
	fs.IntVar(&cfg.MaxConnections, "max-connections", cfg.MaxConnections, "connections the gRPC port holds at once; 0: no cap (env STRATA_MAX_CONNECTIONS)")
	maxStreams := fs.Uint("max-concurrent-streams", uint(cfg.MaxConcurrentStreams), "calls under way per connection (env STRATA_MAX_CONCURRENT_STREAMS)")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "a connection that has not finished its TLS handshake and first request headers by then is closed (env STRATA_HANDSHAKE_TIMEOUT)")
	fs.IntVar(&cfg.MaxClusterPartitions, "max-cluster-partitions", cfg.MaxClusterPartitions, "partitions of all topics together; 0: no cap (env STRATA_MAX_CLUSTER_PARTITIONS)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "BENCHMARKS AND DEBUGGING: serve net/http/pprof under /debug/pprof/ on --http-addr (env STRATA_PPROF)")
	cpuProfile := fs.String("cpuprofile", "", "BENCHMARKS ONLY: write a CPU profile to this file until shutdown")
	return &serverFlags{configFile: configFile, join: join, superUsers: superUsers, cpuProfile: cpuProfile, maxStreams: maxStreams}
}

// resolve completes cfg after the flags are parsed: the file first, then
// the environment, then flags: later wins.
func (sf *serverFlags) resolve(fs *flag.FlagSet, cfg *agent.Config) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *sf.configFile != "" {
		fileCfg := agent.DefaultConfig()
		if err := fileCfg.LoadFile(*sf.configFile); err != nil {
			return err
		}
		overlayUnset(set, cfg, fileCfg)
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "STRATA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] && f.Name != "config" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if *sf.join != "" {
		cfg.Join = nil
		for _, a := range strings.Split(*sf.join, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.Join = append(cfg.Join, a)
			}
		}
	}
	if *sf.superUsers != "" {
		cfg.SuperUsers = nil
		for _, p := range strings.Split(*sf.superUsers, ",") {
			if p = strings.TrimSpace(p); p != "" {
				cfg.SuperUsers = append(cfg.SuperUsers, p)
			}
		}
	}
	if set["max-concurrent-streams"] || os.Getenv("STRATA_MAX_CONCURRENT_STREAMS") != "" {
		cfg.MaxConcurrentStreams = uint32(min(*sf.maxStreams, 1<<31))
	}
	return nil
}

// overlayUnset copies the file's values into cfg for every flag not given
// on the command line.
func overlayUnset(set map[string]bool, cfg *agent.Config, file agent.Config) {
	keep := *cfg
	*cfg = file
	restore := map[string]func(){
		"data-dir":                 func() { cfg.DataDir = keep.DataDir },
		"node-id":                  func() { cfg.NodeID = keep.NodeID },
		"grpc-addr":                func() { cfg.GRPCAddr = keep.GRPCAddr },
		"http-addr":                func() { cfg.HTTPAddr = keep.HTTPAddr },
		"cluster-addr":             func() { cfg.ClusterAddr = keep.ClusterAddr },
		"gossip-addr":              func() { cfg.GossipAddr = keep.GossipAddr },
		"kafka-addr":               func() { cfg.KafkaAddr = keep.KafkaAddr },
		"kafka-auto-create-topics": func() { cfg.KafkaAutoCreateTopics = keep.KafkaAutoCreateTopics },
		"data-groups":              func() { cfg.DataGroups = keep.DataGroups },
		"join":                     func() { cfg.Join = keep.Join },
		"advertise-addr":           func() { cfg.AdvertiseAddr = keep.AdvertiseAddr },
		"metadata-voters":          func() { cfg.MetadataVoters = keep.MetadataVoters },
		"dead-node-timeout":        func() { cfg.DeadNodeTimeout = keep.DeadNodeTimeout },
		"max-segment-bytes":        func() { cfg.MaxSegmentBytes = keep.MaxSegmentBytes },
		"retention-check-interval": func() { cfg.RetentionCheckInterval = keep.RetentionCheckInterval },
		"min-free-disk-bytes":      func() { cfg.MinFreeDiskBytes = keep.MinFreeDiskBytes },
		"snapshot-threshold":       func() { cfg.SnapshotThreshold = keep.SnapshotThreshold },
		"log-level":                func() { cfg.LogLevel = keep.LogLevel },
		"log-format":               func() { cfg.LogFormat = keep.LogFormat },
		"slow-request":             func() { cfg.SlowRequest = keep.SlowRequest },
		"raft-heartbeat-timeout":   func() { cfg.RaftHeartbeatTimeout = keep.RaftHeartbeatTimeout },
		"raft-trailing-logs":       func() { cfg.RaftTrailingLogs = keep.RaftTrailingLogs },
		"pprof":                    func() { cfg.Pprof = keep.Pprof },
		"tls-cert":                 func() { cfg.TLSCert = keep.TLSCert },
		"tls-key":                  func() { cfg.TLSKey = keep.TLSKey },
		"tls-ca":                   func() { cfg.TLSCA = keep.TLSCA },
		"auth":                     func() { cfg.Auth = keep.Auth },
		"super-users":              func() { cfg.SuperUsers = keep.SuperUsers },
		"audit-log":                func() { cfg.AuditLog = keep.AuditLog },
		"gossip-key":               func() { cfg.GossipKey = keep.GossipKey },
		"gossip-key-file":          func() { cfg.GossipKeyFile = keep.GossipKeyFile },
		"max-connections":          func() { cfg.MaxConnections = keep.MaxConnections },
		"max-concurrent-streams":   func() { cfg.MaxConcurrentStreams = keep.MaxConcurrentStreams },
		"max-cluster-partitions":   func() { cfg.MaxClusterPartitions = keep.MaxClusterPartitions },
		"handshake-timeout":        func() { cfg.HandshakeTimeout = keep.HandshakeTimeout },
	}
	for name := range set {
		if f, ok := restore[name]; ok {
			f()
		}
	}
}

// newLogger builds the node's logger in cfg's format, at cfg's level, with
// a level that PUT /api/v1/log-level can change (cfg.LogLevelVar).
func newLogger(cfg *agent.Config) (*slog.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	level, err := agent.ParseLogLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	cfg.LogLevelVar = new(slog.LevelVar)
	cfg.LogLevelVar.Set(level)
	return agent.NewLogger(os.Stderr, cfg.LogFormat, cfg.LogLevelVar)
}
