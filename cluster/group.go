package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// NotLeaderError is the error for a write sent to a node that is not the
// leader of the group. It matches ErrNotLeader and unwraps to raft's error.
type NotLeaderError struct {
	Group      string
	LeaderID   string // empty when no leader is known
	LeaderAddr string // raft (mux) address of the leader, empty when unknown
	Err        error  // raft's error, e.g. raft.ErrNotLeader
}

// Error implements error.
func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return fmt.Sprintf("%v: group %s, leader unknown: %v", ErrNotLeader, e.Group, e.Err)
	}
	return fmt.Sprintf("%v: group %s, leader %s at %s: %v", ErrNotLeader, e.Group, e.LeaderID, e.LeaderAddr, e.Err)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Unwrap returns raft's error.
func (e *NotLeaderError) Unwrap() error { return e.Err }

const (
	// logCacheEntries and logCacheBytes bound the logCache in front of the
	// raft log: the most recent entries up to both bounds are kept, by
	// pointer. 8 MiB is a few group commits of large produce batches, what
	// replication to a follower that keeps up and the FSM read back.
	logCacheEntries = 4096
	logCacheBytes   = 8 << 20

	// snapshotsRetained is how many snapshots FileSnapshotStore keeps.
	snapshotsRetained = 2

	// transportMaxPool is how many idle outgoing connections the
	// NetworkTransport keeps per peer (Consul uses 3).
	transportMaxPool = 3

	// transportTimeout is the I/O deadline of raft RPCs; InstallSnapshot
	// scales it by the snapshot size.
	transportTimeout = 10 * time.Second

	// closeDrainTimeout bounds how long Close waits, with raft still
	// running, for Apply/Barrier/Snapshot calls in flight to be answered.
	closeDrainTimeout = 5 * time.Second

	// boltOpenTimeout bounds the wait for bolt's file lock, so that opening
	// a group whose raft.db is held by another process fails instead of
	// hanging.
	boltOpenTimeout = time.Second
)

// Group is one raft group on this node: the metadata group or a data group.
// Its stable store is a raft-boltdb/v2 file (raft.db), its raft log a
// raftlog.Store (or raft.db, see GroupConfig.LogStore) with a logCache
// in front, snapshots are files, and it talks to its peers through a mux
// layer.
//
// Lock order: Group.mu is a leaf; it is never held across a raft call.
type Group struct {
	cfg       GroupConfig
	logger    *slog.Logger
	raft      *raft.Raft
	transport *raft.NetworkTransport
	bolt      *raftboltdb.BoltStore
	logStore  io.Closer // the raft log store unless it is bolt
	logs      *logCache
	snaps     *raft.FileSnapshotStore
	replicas  *replicaTracker // followers' progress, on the leader
	// leaderChanges counts the leaders this node has learned (status.go).
	leaderChanges atomic.Uint64

	// readyTerm is the last term in which this node, as leader, had
	// applied everything committed before it (group_ready.go).
	readyTerm atomic.Uint64
	readyMu   sync.Mutex
	readyCh   chan struct{} // closed and replaced at each readiness change
	applyHook atomic.Pointer[func(*raft.Log)]
	wg        sync.WaitGroup // the ready loop and its barrier

	closeCh   chan struct{}
	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	closing  bool
	inflight int           // goroutines waiting on raft futures (await)
	drained  chan struct{} // closed once closing and inflight == 0
}

// OpenGroup opens (or creates) the group's state in cfg.Dir and starts raft
// with fsm, talking to peers through layer. The group owns layer from then
// on, also when OpenGroup fails. A new group does nothing until
// BootstrapIfNew or until a leader adds it with AddVoter.
func OpenGroup(cfg GroupConfig, fsm raft.FSM, layer raft.StreamLayer) (_ *Group, err error) {
	if layer == nil {
		return nil, fmt.Errorf("%w: group %q: nil stream layer", ErrInvalidConfig, cfg.Name)
	}
	// Until transport exists, a failure must close layer itself.
	var transport *raft.NetworkTransport
	defer func() {
		if err != nil && transport == nil {
			_ = layer.Close()
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fsm == nil {
		return nil, fmt.Errorf("%w: group %q: nil FSM", ErrInvalidConfig, cfg.Name)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "raft", "raft_group", raftGroupLabel(cfg.Name))
	hlog := newHCLogger(cfg.Logger, "raft").With("raft_group", raftGroupLabel(cfg.Name))

	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("cluster: open group %q: %w", cfg.Name, err)
	}
	g := &Group{cfg: cfg, logger: logger, closeCh: make(chan struct{}), drained: make(chan struct{}), readyCh: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, g.closeStores())
		}
	}()

	g.bolt, err = raftboltdb.New(raftboltdb.Options{
		Path:   filepath.Join(cfg.Dir, "raft.db"),
		NoSync: cfg.NoSync,
		BoltOptions: &bbolt.Options{
			Timeout: boltOpenTimeout,
			// As etcd and containerd: do not write bolt's freelist on
			// every commit but rebuild it on open (a scan of the file),
			// and keep it in a map, not a sorted array. Raft's log churns
			// pages (append at the tail, DeleteRange at the head on each
			// compaction), so the freelist is large; this raised
			// BenchmarkApply without fsync by about a fifth here (less
			// written per commit, no sorted-array allocation). The
			// price: opening scans the whole file.
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: open group %q: raft.db: %w", cfg.Name, err)
	}
	logStore, closer, err := openLogStore(cfg, g.bolt, logger)
	if err != nil {
		return nil, fmt.Errorf("cluster: open group %q: raft log: %w", cfg.Name, err)
	}
	g.logStore = closer
	if cfg.wrapLogStore != nil {
		logStore = cfg.wrapLogStore(cfg.Name, logStore)
	}
	if g.logs, err = newLogCache(logStore, logCacheEntries, logCacheBytes); err != nil {
		return nil, fmt.Errorf("cluster: open group %q: log cache: %w", cfg.Name, err)
	}
	g.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, snapshotsRetained, hlog.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("cluster: open group %q: snapshots: %w", cfg.Name, err)
	}
	transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  hlog.Named("net"),
		// 1 turns pipelined replication off. In raft v1.7.3 a follower
		// that answers Success=false ends pipelineDecode, after which one
		// more pipelined send can park on inprogressCh while
		// decodeResponses parks on doneCh: replication to that follower
		// stops for good (heartbeats go on, so nothing times out) and
		// Shutdown hangs. Seen here after healing an isolated leader
		// (TestE2EClusterIsolatedLeader); see hashicorp/raft#612 and
		// grafana/pyroscope#5518, which turned it off for the same reason.
		MaxRPCsInFlight: 1,
	})
	g.transport = transport

	// A data group's snapshots carry segment files (snapshot_store.go).
	var store raft.SnapshotStore = g.snaps
	if cfg.SnapDataDir != "" {
		if store, err = newDataSnapshotStore(g.snaps, cfg.SnapDataDir); err != nil {
			return nil, fmt.Errorf("cluster: open group %q: %w", cfg.Name, err)
		}
	}
	rc := cfg.raftConfig()
	rc.Logger = hlog
	g.replicas = newReplicaTracker(cfg.ReplicaLagTimeout)
	tt := &trackingTransport{NetworkTransport: transport, track: g.replicas}
	if g.raft, err = raft.NewRaft(rc, hookedFSM{FSM: fsm, g: g}, g.logs, g.bolt, store, tt); err != nil {
		return nil, fmt.Errorf("cluster: open group %q: start raft: %w", cfg.Name, err)
	}
	g.replicas.watch(g.raft)
	g.watchLeaders()
	g.startReadyLoop()
	return g, nil
}

// BootstrapIfNew makes servers the group's first configuration if, and only
// if, raft.HasExistingState finds no state (no term, no log, no snapshot);
// otherwise it does nothing. With no servers it bootstraps a single-voter
// group of this node. Every node of a new group may call it with the same
// servers; a node that will join later through AddVoter must not.
func (g *Group) BootstrapIfNew(servers []raft.Server) error {
	if g.isClosing() {
		return ErrClosed
	}
	has, err := raft.HasExistingState(g.logs, g.bolt, g.snaps)
	if err != nil {
		return fmt.Errorf("cluster: group %s: check existing state: %w", g.cfg.Name, err)
	}
	if has {
		g.logger.Debug("raft state exists; not bootstrapping")
		return nil
	}
	if len(servers) == 0 {
		servers = []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(g.cfg.NodeID), Address: g.transport.LocalAddr()}}
	}
	err = g.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		// State appeared since the check: a leader reached us first.
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: group %s: bootstrap: %w", g.cfg.Name, err)
	}
	g.logger.Info("bootstrapped raft group", "servers", len(servers))
	return nil
}

// Apply replicates cmd through the group's log and returns the FSM's
// response once the entry is applied on this node (the leader). If the FSM
// returns an error value, Apply returns it as its error. It waits until
// ctx is done, or ApplyTimeout if ctx has no deadline.
//
// Errors: ErrNotLeader (a *NotLeaderError) when this node is not the leader
// or lost leadership while committing; ErrTimeout or ctx's error when the
// deadline passes first, in which case the entry may still be committed;
// ErrClosed once Close has begun.
//
// raft keeps cmd by reference (in its log cache, among other places) after
// Apply returns: the caller must not modify it afterwards.
func (g *Group) Apply(ctx context.Context, cmd []byte) (any, error) {
	ctx, cancel := g.withDeadline(ctx)
	defer cancel()
	timeout, err := g.enqueueTimeout(ctx)
	if err != nil {
		return nil, g.mapErr("apply", err)
	}
	f := g.raft.Apply(cmd, timeout)
	if err := g.await(ctx, f); err != nil {
		return nil, g.mapErr("apply", err)
	}
	resp := f.Response()
	if err, ok := resp.(error); ok {
		return nil, err
	}
	return resp, nil
}

// Barrier returns once every entry committed before it has been applied to
// the FSM on this node, which must be the leader.
func (g *Group) Barrier(ctx context.Context) error {
	ctx, cancel := g.withDeadline(ctx)
	defer cancel()
	timeout, err := g.enqueueTimeout(ctx)
	if err != nil {
		return g.mapErr("barrier", err)
	}
	return g.mapErr("barrier", g.await(ctx, g.raft.Barrier(timeout)))
}

// VerifyLeader returns once a majority of the group's voters has confirmed
// that this node still leads: a leader cut off from the others (which
// still believes it leads until its lease runs out) gets ErrNotLeader.
func (g *Group) VerifyLeader(ctx context.Context) error {
	return g.mapErr("verify leader", g.await(ctx, g.raft.VerifyLeader()))
}

// Snapshot takes a snapshot now and compacts the log behind it. It returns
// an error wrapping raft.ErrNothingNewToSnapshot if nothing was applied
// since the last one.
func (g *Group) Snapshot() error {
	return g.mapErr("snapshot", g.await(context.Background(), g.raft.Snapshot()))
}

// IsLeader reports whether this node is the group's leader now.
func (g *Group) IsLeader() bool { return g.raft.State() == raft.Leader }

// Leader returns the raft ServerID and raft (mux) address of the leader this
// node knows of, or empty strings.
func (g *Group) Leader() (id string, addr string) {
	a, i := g.raft.LeaderWithID()
	return string(i), string(a)
}

// Addr returns this node's raft address in the group (the mux address).
func (g *Group) Addr() string { return string(g.transport.LocalAddr()) }

// WaitLeader returns once this node knows a leader of the group (itself or
// another node), or ctx's error. It wakes on raft's leader observations, not
// by polling.
func (g *Group) WaitLeader(ctx context.Context) error {
	if g.isClosing() {
		return ErrClosed
	}
	wake := make(chan raft.Observation, 1)
	obs := raft.NewObserver(wake, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	// Register before looking, so that a change in between still wakes us.
	g.raft.RegisterObserver(obs)
	defer g.raft.DeregisterObserver(obs)
	for {
		if id, _ := g.Leader(); id != "" {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("cluster: group %s: wait for leader: %w", g.cfg.Name, ctxErr(ctx))
		case <-g.closeCh:
			return ErrClosed
		}
	}
}

// LeaderCh returns raft's leadership channel: true when this node becomes
// leader, false when it stops being leader. It has one slot and keeps only
// the latest transition, and raft has only one: give it to one consumer.
func (g *Group) LeaderCh() <-chan bool { return g.raft.LeaderCh() }

// AddVoter adds (or promotes) the node id at raft address addr as a voter.
// Must run on the leader.
func (g *Group) AddVoter(id, addr string) error {
	ctx, cancel := g.withDeadline(context.Background())
	defer cancel()
	f := g.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, g.cfg.ApplyTimeout)
	return g.mapErr("add voter "+id, g.await(ctx, f))
}

// AddNonvoter adds the node id at raft address addr as a non-voter: it
// receives the log but does not vote. Must run on the leader.
func (g *Group) AddNonvoter(id, addr string) error {
	ctx, cancel := g.withDeadline(context.Background())
	defer cancel()
	f := g.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, g.cfg.ApplyTimeout)
	return g.mapErr("add non-voter "+id, g.await(ctx, f))
}

// TransferLeadership hands leadership to the voter id at addr once it has
// caught up. Must run on the leader.
func (g *Group) TransferLeadership(ctx context.Context, id, addr string) error {
	ctx, cancel := g.withDeadline(ctx)
	defer cancel()
	f := g.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
	return g.mapErr("transfer leadership to "+id, g.await(ctx, f))
}

// RemoveServer removes the node id from the group. Must run on the leader.
// A node removed from a group shuts its raft down by itself (raft's
// ShutdownOnRemove); the Group must still be closed.
func (g *Group) RemoveServer(id string) error {
	ctx, cancel := g.withDeadline(context.Background())
	defer cancel()
	f := g.raft.RemoveServer(raft.ServerID(id), 0, g.cfg.ApplyTimeout)
	return g.mapErr("remove server "+id, g.await(ctx, f))
}

// Servers returns the group's latest configuration as this node knows it.
func (g *Group) Servers() ([]raft.Server, error) {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, g.mapErr("get configuration", err)
	}
	cfg := f.Configuration()
	return cfg.Clone().Servers, nil
}

// Raft returns the underlying raft node, for what Group does not wrap
// (stats, leadership transfer, observers).
func (g *Group) Raft() *raft.Raft { return g.raft }

// Close stops the group: it waits (briefly) for Apply, Barrier and Snapshot
// calls in flight, shuts raft down, closes the transport (and with it the
// layer and its connections) and bolt. It is idempotent; later calls return
// the first call's result.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closing = true
		if g.inflight == 0 {
			close(g.drained)
		}
		g.mu.Unlock()
		close(g.closeCh)

		// With raft still running, every queued future gets an answer
		// (committed, ErrNotLeader, ErrLeadershipLost). After Shutdown,
		// futures still in raft's apply queue never do
		// (hashicorp/raft#498), so drain first.
		stranded := !g.waitDrained(closeDrainTimeout)
		var errs []error
		if err := g.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shutdown raft: %w", err))
		}
		// After Shutdown: the ready loop's barrier may wait to be enqueued.
		g.wg.Wait()
		errs = append(errs, g.closeStores())
		if stranded && !g.waitDrained(time.Second) {
			g.mu.Lock()
			n := g.inflight
			g.mu.Unlock()
			g.logger.Warn("raft left futures unanswered after shutdown; their waiting goroutines leak", "count", n)
		}
		if err := errors.Join(errs...); err != nil {
			g.closeErr = fmt.Errorf("cluster: close group %s: %w", g.cfg.Name, err)
		}
	})
	return g.closeErr
}

// closeStores closes what OpenGroup opened besides raft: the transport and
// bolt. Raft must be shut down (or never started).
func (g *Group) closeStores() error {
	var errs []error
	if g.transport != nil {
		// CloseStreams releases pooled outgoing connections, which Close
		// alone leaves open.
		g.transport.CloseStreams()
		if err := g.transport.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close transport: %w", err))
		}
	}
	if g.logStore != nil {
		if err := g.logStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft log: %w", err))
		}
	}
	if g.bolt != nil {
		if err := g.bolt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft.db: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (g *Group) isClosing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

// await waits for f in a goroutine of its own, so that ctx and Close can end
// the wait: raft's futures cannot be selected on, BatchApplyCh lets an Apply
// wait past raft's timeout, and a future can stay unanswered after Shutdown.
func (g *Group) await(ctx context.Context, f raft.Future) error {
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		return raft.ErrRaftShutdown
	}
	g.inflight++
	g.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		defer g.release()
		done <- f.Error()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-g.closeCh:
		return raft.ErrRaftShutdown
	}
}

// withDeadline gives ctx the ApplyTimeout if it has no deadline.
func (g *Group) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, g.cfg.ApplyTimeout)
}

// enqueueTimeout converts ctx's deadline into raft's enqueue timeout.
func (g *Group) enqueueTimeout(ctx context.Context) (time.Duration, error) {
	dl, _ := ctx.Deadline()
	d := time.Until(dl)
	if d <= 0 || ctx.Err() != nil {
		return 0, ctxErr(ctx)
	}
	return d, nil
}

// mapErr turns raft's errors into the package's.
func (g *Group) mapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		id, addr := g.Leader()
		return &NotLeaderError{Group: g.cfg.Name, LeaderID: id, LeaderAddr: addr, Err: err}
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("cluster: group %s: %s: %w", g.cfg.Name, op, ErrClosed)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("cluster: group %s: %s: %w: %w", g.cfg.Name, op, ErrTimeout, context.DeadlineExceeded)
	default:
		return fmt.Errorf("cluster: group %s: %s: %w", g.cfg.Name, op, err)
	}
}

// ctxErr is ctx's error, also matching ErrTimeout when the deadline passed.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)
	}
	return err
}

// release ends one await goroutine.
func (g *Group) release() {
	g.mu.Lock()
	g.inflight--
	if g.closing && g.inflight == 0 {
		close(g.drained)
	}
	g.mu.Unlock()
}

// waitDrained waits up to d for the await goroutines to end and reports
// whether they did. Close has set closing, so none can start.
func (g *Group) waitDrained(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-g.drained:
		return true
	case <-t.C:
		return false
	}
}
