package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/cluster"
)

// Config configures the broker's rules.
type Config struct {
	// DefaultPartitions is a new topic's partition count when none is
	// given; default 1.
	DefaultPartitions int32
	// DefaultMaxBatchBytes is the largest batch a topic accepts when its
	// config sets none; default 1,048,588 bytes (1 MiB + 12), Kafka's
	// message.max.bytes, so Kafka clients see the limit they expect.
	DefaultMaxBatchBytes int32
	// MaxFetchBytes caps one fetch's answer; default 16 MiB. A fetch that
	// asks for nothing gets 1 MiB.
	MaxFetchBytes int
	// MaxFetchWait caps a fetch's long-poll; default 30 s.
	MaxFetchWait time.Duration
	// DefaultSessionTimeout is a group member's session timeout when it
	// asks for none; default 10 s. Heartbeats go at a third of it.
	DefaultSessionTimeout time.Duration
	// RetentionInterval is how often retention runs; default 1 min.
	RetentionInterval time.Duration
	// MaxClusterPartitions caps the partitions of all topics together, so
	// that a flood of topic creations cannot exhaust the nodes; 0 means no
	// cap. Default 50,000.
	MaxClusterPartitions int
	// DescribeTimeout bounds how long a describe (DescribeGroup,
	// DescribeQueueGroup) waits for the leader of partitions it does not
	// lead (describe_leaders.go); the partitions of a leader that does not
	// answer in time show as unknown. Default 2 s.
	DescribeTimeout time.Duration
	// Queue configures queue groups (queue_config.go).
	Queue QueueConfig
	// Disk configures the free-space guard of produces (diskguard.go).
	Disk DiskConfig
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger

	// clock, when set (tests), is the wall clock of the queue code
	// (clock.go): each node of a test cluster gets its own skew.
	clock func() time.Time
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DefaultPartitions:     1,
		MaxClusterPartitions:  50000,
		DefaultMaxBatchBytes:  1<<20 + 12, // Kafka's message.max.bytes default
		MaxFetchBytes:         16 << 20,
		MaxFetchWait:          30 * time.Second,
		DefaultSessionTimeout: 10 * time.Second,
		RetentionInterval:     time.Minute,
		DescribeTimeout:       2 * time.Second,
		Queue:                 DefaultQueueConfig(),
		Disk:                  DefaultDiskConfig(),
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.DefaultPartitions < 1:
		return fmt.Errorf("%w: default partitions %d < 1", ErrInvalidConfig, c.DefaultPartitions)
	case c.DefaultMaxBatchBytes < 1024:
		return fmt.Errorf("%w: default max batch bytes %d < 1024", ErrInvalidConfig, c.DefaultMaxBatchBytes)
	case c.MaxFetchBytes < 1024:
		return fmt.Errorf("%w: max fetch bytes %d < 1024", ErrInvalidConfig, c.MaxFetchBytes)
	case c.MaxFetchWait <= 0, c.DefaultSessionTimeout <= 0, c.RetentionInterval <= 0, c.DescribeTimeout <= 0:
		return fmt.Errorf("%w: durations must be positive", ErrInvalidConfig)
	}
	return errors.Join(c.Queue.Validate(), c.Disk.Validate())
}

// Broker applies Strata's rules over a node's raft groups.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	node  *cluster.Node
	coord *coordinator
	queue *queueManager
	m     *Metrics
	disk  *diskGuard  // nil: no free-space checks
	stamp *stampCache // lag timestamps for scrapes (lag_stamps.go)

	peers Peers // nil: writes led elsewhere are not forwarded

	reconcileCh chan struct{}
	metaMu      sync.Mutex
	metaCh      chan struct{} // closed and replaced at every metadata change
	stop        chan struct{}
	wg          sync.WaitGroup
	closeOnce   sync.Once
}

// New returns a broker over node. Call Start to run its loops.
func New(cfg Config, node *cluster.Node) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	b := &Broker{
		cfg:         cfg,
		log:         lg,
		node:        node,
		reconcileCh: make(chan struct{}, 1),
		metaCh:      make(chan struct{}),
		stop:        make(chan struct{}),
	}
	b.coord = newCoordinator(b)
	b.queue = newQueueManager(b)
	b.m = newMetrics(b)
	b.stamp = newStampCache()
	b.disk = newDiskGuard(cfg.Disk, node.Config().Dir, lg)
	if ackBeforeCommit {
		lg.Warn("failpoint ack-before-commit is on: produce requests are answered before raft commits them (a test binary)")
	}
	return b, nil
}

// Metrics returns the broker's Prometheus metrics.
func (b *Broker) Metrics() *Metrics { return b.m }

// NotifyMetadataChanged asks the reconcile loop to run; the metadata FSM
// calls it after each change. It never blocks.
func (b *Broker) NotifyMetadataChanged() {
	select {
	case b.reconcileCh <- struct{}{}:
	default:
	}
	b.metaMu.Lock()
	close(b.metaCh)
	b.metaCh = make(chan struct{})
	b.metaMu.Unlock()
}

// metaChanged returns a channel closed at the next metadata change.
func (b *Broker) metaChanged() <-chan struct{} {
	b.metaMu.Lock()
	defer b.metaMu.Unlock()
	return b.metaCh
}

// metaCatchUp bounds how long a node that does not lead the metadata
// waits for a name it does not know yet: a client may create a topic, a
// queue group or a group's offsets through one node and use them through
// another at once, before the second has applied the change (a few
// heartbeats at most).
const metaCatchUp = 2 * time.Second

// testHookMetaWait, when set, runs when lookupMeta starts to wait for a
// name this node does not know: a test holding the node's metadata apply
// back releases it there.
var testHookMetaWait atomic.Pointer[func()]

// testHookCatchUp, when set, runs when a request starts to wait for a new
// leader of its data group to apply what its predecessors committed: a
// test holding that node's apply back releases it there.
var testHookCatchUp atomic.Pointer[func()]

// lookupMeta runs find until it succeeds, or, on a node that does not lead
// the metadata, until metaCatchUp passes with no metadata change that makes
// it succeed; it returns find's last answer. Every lookup of a name a
// client gives (topic, queue group, group) goes through it, so that a
// follower never answers "unknown" from a view that is only behind.
//
// A new metadata leader still applying what its predecessor committed
// waits too: its view is the reference only once it has caught up.
func lookupMeta[T any](ctx context.Context, b *Broker, find func() (T, bool)) (T, bool) {
	v, ok := find()
	if ok || b.node.Meta.IsReadyLeader() {
		return v, ok
	}
	if hook := testHookMetaWait.Load(); hook != nil {
		(*hook)()
	}
	t := time.NewTimer(metaCatchUp)
	defer t.Stop()
	for {
		// Both before find: no change is missed between.
		ch, ready := b.metaChanged(), b.node.Meta.ReadyChanged()
		if v, ok = find(); ok {
			return v, true
		}
		if b.node.Meta.IsReadyLeader() {
			return v, false
		}
		select {
		case <-ch:
		case <-ready:
		case <-t.C:
			return v, false
		case <-ctx.Done():
			return v, false
		}
	}
}

// leaderCatchUp bounds how long a request that has no wait of its own
// (ListOffsets, a queue settle) waits for a new leader of its data group
// to apply what its predecessors committed; it then fails with
// ErrNotReady, which clients retry. Catching up takes one barrier round
// unless the FSM is far behind.
const leaderCatchUp = 5 * time.Second

// awaitCaughtUp waits up to d while this node leads g but has not yet
// applied what earlier leaders committed (cluster.Group.WaitReady): until
// then its partitions may end below offsets its predecessor served, and
// its queue states may miss deliveries. It returns nil once g is ready,
// or once this node no longer leads g (the caller's own checks apply
// then), ctx's error when ctx ends, and ErrNotReady when d passes first.
// On a ready leader or a follower it is three atomic loads.
func (b *Broker) awaitCaughtUp(ctx context.Context, g *cluster.Group, d time.Duration) error {
	if !g.CatchingUp() {
		return nil
	}
	noteCatchUp()
	wctx, cancel := context.WithTimeout(ctx, max(d, 0))
	defer cancel()
	_, err := g.WaitReady(wctx)
	switch {
	case err == nil, errors.Is(err, cluster.ErrNotLeader):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("%w: the new leader is still applying what its predecessor committed: %w", ErrNotReady, err)
}

// noteCatchUp runs testHookCatchUp, if set.
func noteCatchUp() {
	if hook := testHookCatchUp.Load(); hook != nil {
		(*hook)()
	}
}

// Start reconciles once, then runs the reconcile, retention and
// group-session loops until Close.
func (b *Broker) Start(ctx context.Context) error {
	if err := b.reconcile(ctx); err != nil {
		return fmt.Errorf("broker: first reconcile: %w", err)
	}
	b.wg.Add(5)
	go b.reconcileLoop()
	go b.retentionLoop()
	go b.coord.sessionLoop(b.stop, &b.wg)
	go b.queue.loop(b.stop, &b.wg)
	go b.stamp.loop(b.stop, &b.wg)
	return nil
}

// Close stops the broker's loops. The node is closed by its owner.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		b.wg.Wait()
	})
	return nil
}

func (b *Broker) reconcileLoop() {
	defer b.wg.Done()
	// Data groups change leaders without a metadata change; a new leader
	// creates the partitions its predecessor had not created yet.
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-b.reconcileCh:
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := b.reconcile(ctx); err != nil && !errors.Is(err, cluster.ErrNotLeader) {
			b.log.Warn("reconcile", "err", err)
		}
		cancel()
	}
}

// reconcile makes the data groups this node leads hold exactly the
// partitions the metadata assigns to them: it creates what is missing (a
// crash between the metadata commit and the partition's creation) and
// deletes partitions of deleted topics.
func (b *Broker) reconcile(ctx context.Context) error {
	topics := b.node.MetaFSM.Topics()
	want := map[cluster.PartKey]bool{}
	var errs []error
	for _, t := range topics {
		for i, a := range t.Partitions {
			k := cluster.PartKey{TopicID: t.ID, Partition: int32(i)}
			want[k] = true
			dg := b.node.DataGroup(a.DataGroup)
			if dg == nil || !dg.Group.IsLeader() || dg.FSM.Partition(k) != nil {
				continue
			}
			if _, err := dg.Group.Apply(ctx, cluster.CreatePartitionCmd(t.Name, k, t.Config)); err != nil {
				errs = append(errs, fmt.Errorf("create %s/%d: %w", t.Name, i, err))
			}
		}
	}
	var nextTopicID uint64
	b.node.MetaFSM.Read(func(s *cluster.MetaState) { nextTopicID = s.NextTopicID })
	for _, dg := range b.node.DataGroups() {
		if !dg.Group.IsLeader() {
			continue
		}
		for _, p := range dg.FSM.Partitions() {
			// A topic id at or past NextTopicID means this node's metadata
			// is behind (a restarted node leading a data group before the
			// metadata caught up): the partition is not known to be deleted.
			if want[p.Key] || p.Key.TopicID >= nextTopicID {
				continue
			}
			if _, err := dg.Group.Apply(ctx, cluster.DeletePartitionCmd(p.Key)); err != nil {
				errs = append(errs, fmt.Errorf("delete %s/%d: %w", p.Topic, p.Key.Partition, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (b *Broker) retentionLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.EnforceRetention()
		}
	}
}

// EnforceRetention deletes the sealed segments that every partition's
// retention has expired, on this node's replicas. It returns how many
// segments were deleted.
func (b *Broker) EnforceRetention() int {
	n := 0
	for _, dg := range b.node.DataGroups() {
		for _, p := range dg.FSM.Partitions() {
			d, err := p.EnforceRetention()
			if err != nil {
				b.log.Warn("retention", "topic", p.Topic, "partition", p.Key.Partition, "err", err)
			}
			n += d
		}
	}
	return n
}

// Ready reports whether this node can serve: every group has a leader and
// has applied what was committed before a restart.
func (b *Broker) Ready(ctx context.Context) error {
	if id, _ := b.node.Meta.Leader(); id == "" {
		return errors.New("broker: metadata group has no leader")
	}
	for _, dg := range b.node.DataGroups() {
		if id, _ := dg.Group.Leader(); id == "" {
			return fmt.Errorf("broker: data group %d has no leader", dg.ID)
		}
	}
	return nil
}

// leaderOf describes who leads a group, for a NotLeaderError.
func (b *Broker) notLeader(g *cluster.Group, what string) error {
	id, _ := g.Leader()
	e := &NotLeaderError{LeaderID: id, What: what}
	if id != "" {
		b.node.MetaFSM.Read(func(s *cluster.MetaState) { e.LeaderAddr = s.Nodes[id].GRPCAddr })
	}
	return e
}

// aliveSet returns which members gossip says are alive.
func (b *Broker) aliveSet() map[string]bool {
	alive := map[string]bool{}
	for _, m := range b.node.Members() {
		alive[m.ID] = m.Status == cluster.MemberStatusAlive
	}
	return alive
}

// aliveNodes counts the registered nodes gossip says are alive.
func (b *Broker) aliveNodes() int {
	alive := b.aliveSet()
	n := 0
	for _, info := range b.node.MetaFSM.NodeInfos() {
		if alive[info.ID] {
			n++
		}
	}
	return n
}

// Nodes returns the nodes the metadata knows, by id.
func (b *Broker) Nodes() []cluster.NodeInfo { return b.node.MetaFSM.NodeInfos() }

// applyMeta applies a metadata command on the metadata leader.
func (b *Broker) applyMeta(ctx context.Context, cmd []byte) (any, error) {
	if !b.node.Meta.IsLeader() {
		return nil, b.notLeader(b.node.Meta, "metadata")
	}
	return b.node.Meta.Apply(ctx, cmd)
}
