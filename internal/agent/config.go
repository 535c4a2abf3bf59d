package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stratalog/strata/cluster"
)

// Config is a node's configuration. Flags, STRATA_* environment variables
// and an optional YAML file set it (flags win over the environment, which
// wins over the file).
type Config struct {
	// DataDir holds everything the node stores; default ./data.
	DataDir string `yaml:"data_dir"`
	// NodeID names the node in the cluster; default the host name.
	NodeID string `yaml:"node_id"`
	// GRPCAddr is the client API address; default 127.0.0.1:7400.
	GRPCAddr string `yaml:"grpc_addr"`
	// HTTPAddr serves the web console (/console/, its JSON API under
	// /api/v1), /metrics, /healthz and /readyz; default 127.0.0.1:7480.
	HTTPAddr string `yaml:"http_addr"`
	// ClusterAddr is the raft port shared by every raft group; default
	// 127.0.0.1:7401.
	ClusterAddr string `yaml:"cluster_addr"`
	// KafkaAddr is the Kafka wire-protocol listener (internal/kafka); ""
	// turns it off. Default 127.0.0.1:9092.
	KafkaAddr string `yaml:"kafka_addr"`
	// KafkaAutoCreateTopics creates a topic a Kafka client produces to or
	// asks metadata for (auto.create.topics.enable). Default false.
	KafkaAutoCreateTopics bool `yaml:"kafka_auto_create_topics"`
	// GossipAddr is the serf membership port; default 127.0.0.1:7402.
	GossipAddr string `yaml:"gossip_addr"`
	// Join lists gossip addresses (host:port) of cluster members to join;
	// empty starts (or restarts) a cluster of its own. Default none.
	Join []string `yaml:"join"`
	// AdvertiseAddr is the host (name or IP) other nodes and clients reach
	// this node at, combined with the ports of the gRPC, cluster and gossip
	// listeners; empty uses the listeners' own addresses. Default "".
	AdvertiseAddr string `yaml:"advertise_addr"`
	// DataGroups is the number of data raft groups each node is a voter
	// of; default 4.
	DataGroups int `yaml:"data_groups"`
	// MetadataVoters is how many nodes vote in the metadata group; the
	// others follow it as non-voters. 1, 3 or 5; default 3.
	MetadataVoters int `yaml:"metadata_voters"`
	// DeadNodeTimeout is how long a failed node stays in the cluster before
	// it is removed and its replicas re-placed; 0 never removes it.
	// Default 30 min.
	DeadNodeTimeout time.Duration `yaml:"dead_node_timeout"`
	// MaxSegmentBytes rolls partition segments past this size; default 512 MiB.
	MaxSegmentBytes int64 `yaml:"max_segment_bytes"`
	// MinFreeDiskBytes is the free space, in bytes, of DataDir's file
	// system below which produces are refused with a retryable "disk full"
	// (Unavailable) instead of reaching ENOSPC in raft's log or a segment
	// log, which fences a partition until restart. 0 (the default) means
	// max(64 MiB, 2 x MaxSegmentBytes); a negative value turns the check
	// off.
	MinFreeDiskBytes int64 `yaml:"min_free_disk_bytes"`
	// RetentionCheckInterval is how often retention runs; default 1 min.
	RetentionCheckInterval time.Duration `yaml:"retention_check_interval"`
	// SnapshotThreshold is how many raft entries a group applies between
	// snapshots (checkpoints of the segment logs); default 1024. A data
	// group's entries are record batches of up to a MiB, and raft keeps
	// SnapshotThreshold + RaftTrailingLogs of them on disk, so these bound
	// the raft log's size (about 2 GiB at most with the defaults).
	SnapshotThreshold uint64 `yaml:"snapshot_threshold"`
	// RaftHeartbeatTimeout is how long a raft follower waits without hearing
	// from its leader before it starts an election (randomised to 1-2x);
	// the election timeout is the same and the leader lease half of it.
	// Shorter fails over sooner and risks needless elections on a loaded
	// machine. Default 500 ms.
	RaftHeartbeatTimeout time.Duration `yaml:"raft_heartbeat_timeout"`
	// RaftTrailingLogs is how many raft entries a group keeps after a
	// snapshot, so that a follower a little behind catches up from the log
	// rather than from a snapshot; default 1024.
	RaftTrailingLogs uint64 `yaml:"raft_trailing_logs"`
	// LogLevel is debug, info, warn or error; default info. With
	// LogLevelVar set it can change while the node runs (PUT
	// /api/v1/log-level).
	LogLevel string `yaml:"log_level"`
	// LogFormat is text (logfmt, the default) or json (one object a line).
	LogFormat string `yaml:"log_format"`
	// LogLevelVar is the level of the logger given to New (NewLogger),
	// which PUT /api/v1/log-level changes; nil: the level cannot change at
	// run time. No flag or file sets it.
	LogLevelVar *slog.LevelVar `yaml:"-"`
	// SlowRequest is the time above which a gRPC call or a Kafka request
	// is logged at Warn with its method (API), duration, peer and
	// principal, not counting a long poll's wait (Kafka's Fetch and group
	// joins, which wait by design, are not logged); 0 logs none. Default 1 s.
	SlowRequest time.Duration `yaml:"slow_request"`
	// Pprof serves Go's profiler (net/http/pprof) under /debug/pprof/ on
	// HTTPAddr, so that a profile can be taken of one window of a running
	// node (a benchmark phase) instead of its whole life. Anyone who
	// reaches HTTPAddr can then read the process's stacks and cost it CPU:
	// for benchmarks and debugging. Default false.
	Pprof bool `yaml:"pprof"`
	// TLSCert and TLSKey are this node's certificate and key (PEM), a
	// node certificate for NodeID made by `strata cert create-node`; TLSCA
	// is the CA that signs the nodes' and the clients' certificates. With
	// them the gRPC and HTTP ports serve TLS (1.2 or later; a client may
	// authenticate with a certificate of the CA), and the cluster port
	// requires mutual TLS with node certificates, so that no process
	// without one can send raft traffic or join. The files are read again
	// when they change (rotation without restart). Default none: plaintext.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	TLSCA   string `yaml:"tls_ca"`
	// Auth requires every client call to be authenticated (a client
	// certificate, or a user and password over TLS) and applies ACLs
	// (default deny). It needs TLS. Default false.
	Auth bool `yaml:"auth"`
	// SuperUsers are principals (user:NAME) allowed everything whatever
	// the ACLs, such as the administrator's client certificate. Default
	// none.
	SuperUsers []string `yaml:"super_users"`
	// AuditLog is the file of the JSON audit log (failed logins, denials,
	// admin changes); "" means DataDir/audit.log when Auth is on and none
	// otherwise; "-" means none.
	AuditLog string `yaml:"audit_log"`
	// GossipKey is the gossip encryption key, base64 of 16, 24 or 32
	// bytes (`strata cluster gossip-key generate`); every node needs it to
	// join. Rotations (`strata cluster gossip-key install|use|remove`)
	// are kept in the node's keyring file, which wins over this on
	// restart. Default none: gossip in clear.
	GossipKey string `yaml:"gossip_key"`
	// GossipKeyFile names a file holding GossipKey (base64, first line),
	// so that the key stays out of the command line and the environment.
	GossipKeyFile string `yaml:"gossip_key_file"`
	// MaxConnections caps the connections the gRPC port holds at once;
	// more wait to be accepted. Default 4096; 0 means no cap.
	MaxConnections int `yaml:"max_connections"`
	// MaxConcurrentStreams caps the calls under way on one connection;
	// default 1024.
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
	// HandshakeTimeout bounds a connection's TLS handshake and the first
	// bytes of the protocol (HTTP/2 preface, HTTP headers) on the gRPC and
	// HTTP ports: a peer that stalls is disconnected. Default 10 s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// MaxClusterPartitions caps the partitions of all topics together;
	// default 50,000, 0 means no cap.
	MaxClusterPartitions int `yaml:"max_cluster_partitions"`
	// Faults, for in-process tests only, routes this node's raft traffic
	// through a fault-injecting network shared with the test's other
	// nodes (cluster.FaultNet). No flag or file sets it.
	Faults *cluster.FaultNet `yaml:"-"`
}

// DefaultConfig returns the defaults of a single local node.
func DefaultConfig() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "strata-1"
	}
	return Config{
		DataDir:                "./data",
		NodeID:                 host,
		GRPCAddr:               "127.0.0.1:7400",
		HTTPAddr:               "127.0.0.1:7480",
		ClusterAddr:            "127.0.0.1:7401",
		GossipAddr:             "127.0.0.1:7402",
		KafkaAddr:              "127.0.0.1:9092",
		DataGroups:             4,
		MetadataVoters:         3,
		DeadNodeTimeout:        30 * time.Minute,
		MaxSegmentBytes:        512 << 20,
		RetentionCheckInterval: time.Minute,
		SnapshotThreshold:      1024,
		RaftHeartbeatTimeout:   500 * time.Millisecond,
		RaftTrailingLogs:       1024,
		LogLevel:               "info",
		LogFormat:              "text",
		SlowRequest:            time.Second,
		MaxConnections:         4096,
		MaxConcurrentStreams:   1024,
		HandshakeTimeout:       10 * time.Second,
		MaxClusterPartitions:   50000,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	if c.NodeID == "" {
		errs = append(errs, errors.New("node id is empty"))
	}
	if c.GRPCAddr == "" || c.ClusterAddr == "" {
		errs = append(errs, errors.New("grpc and cluster addresses are required"))
	}
	if c.DataGroups < 1 || c.DataGroups > 64 {
		errs = append(errs, fmt.Errorf("data groups %d not in [1, 64]", c.DataGroups))
	}
	switch c.MetadataVoters {
	case 1, 3, 5:
	default:
		errs = append(errs, fmt.Errorf("metadata voters %d is not 1, 3 or 5", c.MetadataVoters))
	}
	if c.DeadNodeTimeout < 0 {
		errs = append(errs, errors.New("dead node timeout must not be negative"))
	}
	if c.MaxSegmentBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("max segment bytes %d < 1 MiB", c.MaxSegmentBytes))
	}
	if c.RetentionCheckInterval <= 0 {
		errs = append(errs, errors.New("retention check interval must be positive"))
	}
	if c.RaftHeartbeatTimeout < 50*time.Millisecond {
		errs = append(errs, fmt.Errorf("raft heartbeat timeout %v < 50ms", c.RaftHeartbeatTimeout))
	}
	if c.SnapshotThreshold < 16 {
		errs = append(errs, fmt.Errorf("snapshot threshold %d < 16", c.SnapshotThreshold))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level %q is not debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log format %q is not text or json", c.LogFormat))
	}
	if c.SlowRequest < 0 {
		errs = append(errs, fmt.Errorf("slow request threshold %v must not be negative", c.SlowRequest))
	}
	errs = append(errs, c.validateSecurity()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent: invalid config: %w", err)
	}
	return nil
}

// DiskMinFreeBytes returns the free-space minimum MinFreeDiskBytes means:
// 0 for none.
func (c Config) DiskMinFreeBytes() int64 {
	switch {
	case c.MinFreeDiskBytes < 0:
		return 0
	case c.MinFreeDiskBytes == 0:
		return max(64<<20, 2*c.MaxSegmentBytes)
	}
	return c.MinFreeDiskBytes
}

// LoadFile overlays a YAML file on c. Unknown keys are an error, so a typo
// does not pass silently.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("agent: config file: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("agent: config file %s: %w", path, err)
	}
	return nil
}

func (c Config) validateSecurity() []error {
	var errs []error
	if c.GossipKey != "" && c.GossipKeyFile != "" {
		errs = append(errs, errors.New("gossip key and gossip key file exclude each other"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls cert and tls key go together"))
	}
	if c.TLSCert != "" && c.TLSCA == "" {
		errs = append(errs, errors.New("tls needs the CA (tls_ca) that signs the nodes' and clients' certificates"))
	}
	if c.Auth && c.TLSCert == "" {
		errs = append(errs, errors.New("auth needs TLS (tls_cert, tls_key, tls_ca): passwords and client certificates travel over it"))
	}
	for _, p := range c.SuperUsers {
		if len(p) <= len("user:") || p[:len("user:")] != "user:" {
			errs = append(errs, fmt.Errorf("super user %q is not user:NAME", p))
		}
	}
	if c.MaxConnections < 0 || c.MaxClusterPartitions < 0 {
		errs = append(errs, errors.New("max connections and max cluster partitions must not be negative"))
	}
	if c.HandshakeTimeout <= 0 {
		errs = append(errs, errors.New("handshake timeout must be positive"))
	}
	if c.MaxConcurrentStreams < 1 {
		errs = append(errs, errors.New("max concurrent streams must be at least 1"))
	}
	return errs
}
