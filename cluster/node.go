package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/cluster/mux"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// Serf tags a node publishes.
const (
	tagGRPC = "grpc" // client (gRPC) address
	tagRaft = "raft" // cluster (raft mux) address
	// tagKafka is the Kafka listener's address (absent without one).
	tagKafka = "kafka"
	tagLead  = "lead" // comma-separated ids of the data groups it leads
	tagLag   = "lag"  // lagging voters of the groups it leads (status.go)
	// tagFeatures lists, comma-separated, the features this node's version
	// understands (security_meta.go: RequireFeature).
	tagFeatures = "feat"
)

// NodeConfig configures the raft side of one node.
type NodeConfig struct {
	// ID is the node's id, unique in the cluster (raft ServerID, serf name).
	ID string
	// Dir holds meta/ and data-N/ (raft stores, snapshots, partitions).
	Dir string
	// ClusterAddr is the address the multiplexed raft port listens on.
	ClusterAddr string
	// AdvertiseClusterAddr is the raft address other nodes dial (host:port,
	// the host may be a name); "" means the listener's address.
	AdvertiseClusterAddr string
	// GRPCAddr is the node's client address as clients reach it, recorded in
	// the metadata so that clients can be sent to partition leaders.
	GRPCAddr string
	// KafkaAddr is the node's Kafka listener as clients reach it, recorded
	// likewise; "" without one.
	KafkaAddr string
	// Gossip configures serf membership. An empty Gossip.BindAddr runs the
	// node without membership: a cluster of one. NodeID, Tags and Join are
	// set by the node.
	Gossip MembershipConfig
	// Join lists gossip addresses of members to join. A node with no Join
	// and no raft state bootstraps a new cluster; with Join it waits to be
	// added by the metadata leader.
	Join []string
	// DataGroups is the number of data raft groups each node is a voter of,
	// per replication factor in use; default 4.
	DataGroups int
	// MetadataVoters is how many nodes vote in the metadata group (the rest
	// follow as non-voters); default 3.
	MetadataVoters int
	// DeadNodeTimeout is how long a node may stay failed before the
	// metadata leader removes it and re-places its replicas; 0 never does.
	// Default 0.
	DeadNodeTimeout time.Duration
	// ReconcileInterval is how often the node reconciles its raft groups
	// with the metadata and the membership without being woken; default 1 s.
	ReconcileInterval time.Duration
	// Segment maps a topic's configuration to its partitions' segment
	// config (Fsync must be segment.FsyncNever).
	Segment func(topic.Config) segment.Config
	// Raft holds the raft timings shared by every group (Name, NodeID and
	// Dir are set per group).
	Raft   GroupConfig
	Logger *slog.Logger
	// features, when set (tests), replaces the features the node
	// advertises (security_meta.go), to play an older version.
	features []string
	// Faults, for tests only, routes the raft traffic this node dials
	// through a FaultNet that the test shares among its nodes; nil (every
	// real node) dials plain TCP.
	Faults *FaultNet
	// ClusterTLS, when set, runs every connection of the cluster port over
	// mutual TLS (see package mux); nil keeps it plaintext.
	ClusterTLS *mux.ClusterTLS
	// AdmitMember, when set, is asked by the metadata leader before it
	// registers a gossip member as a node (and so before the member can
	// become a raft voter or hold replicas); an error keeps the member out.
	// VerifyMemberTLS is the standard check. nil admits every member.
	AdmitMember func(ctx context.Context, id, clusterAddr string) error
}

// DataGroup is one data raft group on this node with its state machine.
type DataGroup struct {
	ID    uint32
	Group *Group
	FSM   *DataFSM

	opened time.Time // when this node opened it (reconcile.go: strandedIn)
}

// Node is the raft side of one node: the metadata group and the data groups
// this node is a voter of, all sharing one multiplexed cluster port, and
// its serf membership. A goroutine reconciles them with the metadata (see
// reconcile.go); it is joined by Close.
//
// Lock order: Node.mu is a leaf; it is never held across raft, network or
// disk calls.
type Node struct {
	cfg     NodeConfig
	log     *slog.Logger // component=cluster
	logBase *slog.Logger // as given; the parts add their component

	mux  *mux.Mux
	Meta *Group
	// MetaFSM is the metadata state machine.
	MetaFSM *MetaFSM
	members *Membership // nil without gossip
	// onGroupsChange is called (outside locks) when a data group is opened.
	onGroupsChange func()

	mu     sync.Mutex
	data   map[uint32]*DataGroup
	closed bool

	kickCh  chan struct{}
	stop    chan struct{}
	stopCtx context.Context // canceled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	rec     reconcileState // owned by the reconcile goroutine
	// deadNodeTimeout is cfg.DeadNodeTimeout, changeable by tests.
	deadNodeTimeout atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// OpenNode opens (or creates) the node's metadata group and the data groups
// it has on disk, and starts gossip. A node without Join and without state
// bootstraps the metadata group as its single voter. onMetaChange is called
// after each metadata change and each newly opened data group. Canceling
// ctx aborts a slow open (many data groups to recover, a join that waits
// for its members) with an error that wraps ctx's.
func OpenNode(ctx context.Context, cfg NodeConfig, onMetaChange func()) (*Node, error) {
	if cfg.ID == "" || cfg.Dir == "" || cfg.ClusterAddr == "" || cfg.Segment == nil {
		return nil, errors.New("cluster: node needs an id, a directory, a cluster address and a segment config")
	}
	if cfg.DataGroups <= 0 {
		cfg.DataGroups = 4
	}
	if cfg.MetadataVoters <= 0 {
		cfg.MetadataVoters = 3
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = time.Second
	}
	if onMetaChange == nil {
		onMetaChange = func() {}
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: node dir: %w", err)
	}
	mux, err := listenMux(cfg, lg)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg, log: lg.With("component", "cluster"), logBase: lg, mux: mux,
		onGroupsChange: onMetaChange,
		data:           map[uint32]*DataGroup{},
		kickCh:         make(chan struct{}, 1),
		stop:           make(chan struct{}),
	}
	n.rec.init()
	n.deadNodeTimeout.Store(int64(cfg.DeadNodeTimeout))
	n.stopCtx, n.cancel = context.WithCancel(context.Background())
	if cfg.AdvertiseClusterAddr != "" {
		if err := n.mux.SetAdvertise(cfg.AdvertiseClusterAddr); err != nil {
			return nil, errors.Join(err, n.Close())
		}
	}
	if cfg.Faults != nil {
		cfg.Faults.attach(n.mux, cfg.ID)
	}
	n.MetaFSM = NewMetaFSM(func() { n.Kick(); onMetaChange() })
	n.Meta, err = n.openGroup("meta", n.MetaFSM, "")
	if err != nil {
		return nil, errors.Join(err, n.Close())
	}
	if len(cfg.Join) == 0 {
		self := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(cfg.ID), Address: raft.ServerAddress(n.ClusterAddr())}
		if err := n.Meta.BootstrapIfNew([]raft.Server{self}); err != nil {
			return nil, errors.Join(err, n.Close())
		}
	}
	if err := n.openExistingDataGroups(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	if cfg.Gossip.BindAddr != "" {
		if n.members, err = NewMembership(ctx, n.gossipConfig(lg)); err != nil {
			return nil, errors.Join(err, n.Close())
		}
	}
	return n, nil
}

// gossipConfig completes cfg.Gossip with what the node knows.
func (n *Node) gossipConfig(lg *slog.Logger) MembershipConfig {
	cfg := n.cfg
	gc := cfg.Gossip
	gc.NodeID = cfg.ID
	gc.Join = cfg.Join
	gc.Tags = n.baseTags()
	if gc.Logger == nil {
		gc.Logger = lg
	}
	if gc.SnapshotPath == "" {
		gc.SnapshotPath = filepath.Join(cfg.Dir, "serf.snapshot")
	}
	if gc.KeyringFile == "" && len(gc.Keys) > 0 {
		// Keys installed or rotated later must survive a restart.
		gc.KeyringFile = filepath.Join(cfg.Dir, "serf.keyring")
	}
	return gc
}

// listenMux opens the cluster port, with mutual TLS when configured.
func listenMux(cfg NodeConfig, lg *slog.Logger) (*mux.Mux, error) {
	if cfg.ClusterTLS != nil {
		if err := cfg.ClusterTLS.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	ln, err := net.Listen("tcp", cfg.ClusterAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen on cluster address: %w", err)
	}
	if cfg.ClusterTLS == nil {
		return mux.NewMux(ln, lg), nil
	}
	m, err := mux.NewTLSMux(ln, cfg.ClusterTLS, lg)
	if err != nil {
		return nil, errors.Join(err, ln.Close())
	}
	return m, nil
}

func (n *Node) openGroup(name string, fsm raft.FSM, snapDataDir string) (*Group, error) {
	gc := n.cfg.Raft
	gc.Name = name
	gc.SnapDataDir = snapDataDir
	gc.NodeID = n.cfg.ID
	gc.Dir = filepath.Join(n.cfg.Dir, name)
	gc.Logger = n.logBase // OpenGroup adds the component and raft_group
	g, err := OpenGroup(gc, fsm, n.mux.Layer(name))
	if err != nil {
		return nil, fmt.Errorf("cluster: open group %s: %w", name, err)
	}
	return g, nil
}

// groupName is the name of data group id on the mux and on disk.
func groupName(id uint32) string { return fmt.Sprintf("data-%d", id) }

// openExistingDataGroups opens every data group that has a directory: the
// node was a voter of it when it stopped. Each can take a while (its
// partitions are recovered), so ctx is checked before each.
func (n *Node) openExistingDataGroups(ctx context.Context) error {
	ents, err := os.ReadDir(n.cfg.Dir)
	if err != nil {
		return fmt.Errorf("cluster: node dir: %w", err)
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "data-")
		if !ok || !e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(rest, 10, 32)
		if err != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cluster: open data groups: %w", err)
		}
		if _, err := n.openDataGroup(uint32(id)); err != nil {
			return err
		}
	}
	return nil
}

// openDataGroup opens data group id (creating its state when new) and adds
// it to the node. It returns the group already open, if any.
func (n *Node) openDataGroup(id uint32) (*DataGroup, error) {
	if dg := n.DataGroup(id); dg != nil {
		return dg, nil
	}
	name := groupName(id)
	snapDir := filepath.Join(n.cfg.Dir, name, "snapdata")
	fsm, err := NewDataFSM(DataFSMConfig{
		Dir:     filepath.Join(n.cfg.Dir, name, "partitions"),
		SnapDir: snapDir,
		Segment: n.cfg.Segment,
		Logger:  n.log.With("raft_group", raftGroupID(id)),
	})
	if err != nil {
		return nil, err
	}
	g, err := n.openGroup(name, fsm, snapDir)
	if err != nil {
		return nil, errors.Join(err, fsm.Close())
	}
	dg := &DataGroup{ID: id, Group: g, FSM: fsm, opened: time.Now()}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.Join(ErrClosed, g.Close(), fsm.Close())
	}
	n.data[id] = dg
	n.mu.Unlock()
	n.log.Info("opened data group", "raft_group", raftGroupID(id))
	n.onGroupsChange()
	return dg, nil
}

// dropDataGroup closes a data group this node is no longer a voter of and
// deletes its state.
func (n *Node) dropDataGroup(id uint32) error {
	n.mu.Lock()
	dg := n.data[id]
	delete(n.data, id)
	n.mu.Unlock()
	if dg == nil {
		return nil
	}
	err := errors.Join(dg.Group.Close(), dg.FSM.Close())
	n.log.Info("dropped data group", "raft_group", raftGroupID(id), "err", err)
	return errors.Join(err, os.RemoveAll(filepath.Join(n.cfg.Dir, groupName(id))))
}

// Start waits until the metadata group has a leader and this node is
// registered in the metadata; on a new single node it also creates the
// first data groups. It then starts the reconcile loop and waits until
// every local data group knows a leader.
func (n *Node) Start(ctx context.Context) error {
	if err := n.Meta.WaitLeader(ctx); err != nil {
		return fmt.Errorf("cluster: metadata group: %w", err)
	}
	if n.Meta.IsLeader() {
		// The metadata reflects every committed entry before we decide
		// what is missing.
		if _, err := n.Meta.WaitReady(ctx); err != nil {
			return err
		}
		if err := n.registerSelf(ctx); err != nil {
			return err
		}
	}
	n.wg.Add(1)
	go n.reconcileLoop()
	if err := n.waitRegistered(ctx); err != nil {
		return err
	}
	// The loop opens (and bootstraps) the groups the metadata gives us;
	// wait for them, so that a node serves its groups once Start returns.
	if err := n.waitLocalGroups(ctx); err != nil {
		return err
	}
	for _, d := range n.DataGroups() {
		if err := d.Group.WaitLeader(ctx); err != nil {
			return fmt.Errorf("cluster: data group %d: %w", d.ID, err)
		}
		// Entries committed before a restart are applied again once the
		// group has a leader; on the leader, wait for that so reads see
		// them (a follower catches up from its leader). The group's ready
		// loop does the same after every later election (group_ready.go).
		if d.Group.IsLeader() {
			if _, err := d.Group.WaitReady(ctx); err != nil && !errors.Is(err, ErrNotLeader) {
				return fmt.Errorf("cluster: data group %d: %w", d.ID, err)
			}
		}
	}
	return nil
}

// registerSelf records this node (and, on a new cluster, its first data
// groups of one voter). Caller is the metadata leader.
func (n *Node) registerSelf(ctx context.Context) error {
	me := n.selfInfo()
	known, _ := n.MetaFSM.NodeInfo(n.cfg.ID)
	if known != me {
		if _, err := n.Meta.Apply(ctx, RegisterNodeCmd(me)); err != nil {
			return fmt.Errorf("cluster: register node: %w", err)
		}
	}
	groups := n.MetaFSM.DataGroupInfos()
	if len(groups) > 0 {
		return nil
	}
	plan := PlanDataGroups(nil, []string{n.cfg.ID}, 1, n.cfg.DataGroups, 0)
	if _, err := n.Meta.Apply(ctx, SetDataGroupsCmd(plan)); err != nil {
		return fmt.Errorf("cluster: record data groups: %w", err)
	}
	return nil
}

func (n *Node) selfInfo() NodeInfo {
	me := NodeInfo{ID: n.cfg.ID, GRPCAddr: n.cfg.GRPCAddr, ClusterAddr: n.ClusterAddr(), KafkaAddr: n.cfg.KafkaAddr,
		Features: n.baseTags()[tagFeatures]}
	if n.members != nil {
		me.GossipAddr = n.members.LocalMember().Addr
	}
	return me
}

// waitRegistered waits until the metadata this node has applied holds it.
func (n *Node) waitRegistered(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, ok := n.MetaFSM.NodeInfo(n.cfg.ID); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: wait to be registered by the metadata leader: %w", ctxErr(ctx))
		case <-n.stop:
			return ErrClosed
		case <-t.C:
		}
	}
}

// waitLocalGroups waits until every data group the metadata makes this
// node a voter of is open.
func (n *Node) waitLocalGroups(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		missing := false
		for _, g := range n.MetaFSM.DataGroupInfos() {
			if slices.Contains(g.Voters, n.cfg.ID) && n.DataGroup(g.ID) == nil {
				missing = true
				break
			}
		}
		if !missing {
			return nil
		}
		n.Kick()
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: wait for local data groups: %w", ctxErr(ctx))
		case <-n.stop:
			return ErrClosed
		case <-t.C:
		}
	}
}

// DataGroup returns the local data group with that id, or nil.
func (n *Node) DataGroup(id uint32) *DataGroup {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.data[id]
}

// DataGroups returns the node's data groups, sorted by id.
func (n *Node) DataGroups() []*DataGroup {
	n.mu.Lock()
	out := make([]*DataGroup, 0, len(n.data))
	for _, d := range n.data {
		out = append(out, d)
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b *DataGroup) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Config returns the node's configuration (with defaults filled in).
func (n *Node) Config() NodeConfig { return n.cfg }

// ClusterAddr returns the raft address other nodes reach this node at.
func (n *Node) ClusterAddr() string { return n.mux.Addr().String() }

// GossipAddr returns the serf address, or "" without membership.
func (n *Node) GossipAddr() string {
	if n.members == nil {
		return ""
	}
	return n.members.LocalMember().Addr
}

// Membership returns the node's gossip membership (for the keyring
// operations), or nil when the node runs without gossip.
func (n *Node) Membership() *Membership { return n.members }

// Members returns the members gossip knows, or only this node without
// membership.
func (n *Node) Members() []Member {
	if n.members == nil {
		return []Member{{ID: n.cfg.ID, Status: MemberStatusAlive,
			Tags: map[string]string{tagGRPC: n.cfg.GRPCAddr, tagRaft: n.ClusterAddr()}}}
	}
	return n.members.Members()
}

// GroupLeader returns the id of the node that leads data group id: from raft
// when the group is local, else from the leader's gossip tags. "" when
// unknown.
func (n *Node) GroupLeader(id uint32) string {
	if dg := n.DataGroup(id); dg != nil {
		l, _ := dg.Group.Leader()
		return l
	}
	if n.members == nil {
		return ""
	}
	want := strconv.FormatUint(uint64(id), 10)
	for _, m := range n.members.Members() {
		if m.Status != MemberStatusAlive {
			continue
		}
		for s := range strings.SplitSeq(m.Tags[tagLead], ",") {
			if s == want {
				return m.ID
			}
		}
	}
	return ""
}

// setDeadNodeTimeout changes the dead-node timeout (tests).
func (n *Node) setDeadNodeTimeout(d time.Duration) {
	n.deadNodeTimeout.Store(int64(d))
	n.Kick()
}

// Kick wakes the reconcile loop. It never blocks.
func (n *Node) Kick() {
	select {
	case n.kickCh <- struct{}{}:
	default:
	}
}

// Close leaves gossip, stops the reconcile loop, shuts every group down
// (data groups first, then the metadata group) and closes the partitions and
// the cluster port. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		close(n.stop)
		n.cancel()
		n.wg.Wait()
		if n.members != nil {
			errs = append(errs, n.members.Close())
		}
		n.mu.Lock()
		n.closed = true
		data := n.data
		n.data = map[uint32]*DataGroup{}
		n.mu.Unlock()
		for _, d := range data {
			errs = append(errs, d.Group.Close(), d.FSM.Close())
		}
		if n.Meta != nil {
			errs = append(errs, n.Meta.Close())
		}
		errs = append(errs, n.mux.Close())
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// raftGroupLabel is the raft_group of logs (and of the broker's metrics)
// for the group named name on the mux and on disk: "meta", or a data
// group's id.
func raftGroupLabel(name string) string { return strings.TrimPrefix(name, "data-") }

// raftGroupID is the raft_group of data group id.
func raftGroupID(id uint32) string { return strconv.FormatUint(uint64(id), 10) }
