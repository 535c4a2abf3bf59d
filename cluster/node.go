package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/segment"
)

// NodeConfig configures the raft side of one node.
type NodeConfig struct {
	// ID is the node's id, unique in the cluster (raft ServerID).
	ID string
	// Dir holds meta/ and data-N/ (raft stores, snapshots, partitions).
	Dir string
	// ClusterAddr is the address the multiplexed raft port listens on.
	ClusterAddr string
	// GRPCAddr is the node's client address, recorded in the metadata so
	// that clients can be sent to partition leaders.
	GRPCAddr string
	// DataGroups is the number of data raft groups on the node; default 4.
	DataGroups int
	// Segment maps a topic's configuration to its partitions' segment
	// config (Fsync must be segment.FsyncNever).
	Segment func(TopicConfig) segment.Config
	// Raft holds the raft timings shared by every group (Name, NodeID and
	// Dir are set per group).
	Raft   GroupConfig
	Logger *slog.Logger
}

// DataGroup is one data raft group on this node with its state machine.
type DataGroup struct {
	ID    uint32
	Group *Group
	FSM   *DataFSM
}

// Node is the raft side of one node: the metadata group and the data
// groups, all sharing one multiplexed cluster port.
type Node struct {
	cfg NodeConfig
	log *slog.Logger

	mux  *Mux
	Meta *Group
	// MetaFSM is the metadata state machine.
	MetaFSM *MetaFSM
	data    []*DataGroup

	closeOnce sync.Once
	closeErr  error
}

// OpenNode opens (or creates) the node's raft groups and, when the node has
// no state yet, bootstraps each as a group of one voter: a single node is a
// cluster of one. onMetaChange is called after each metadata change.
func OpenNode(cfg NodeConfig, onMetaChange func()) (*Node, error) {
	if cfg.ID == "" || cfg.Dir == "" || cfg.ClusterAddr == "" || cfg.Segment == nil {
		return nil, errors.New("cluster: node needs an id, a directory, a cluster address and a segment config")
	}
	if cfg.DataGroups <= 0 {
		cfg.DataGroups = 4
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: node dir: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.ClusterAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen on cluster address: %w", err)
	}
	n := &Node{cfg: cfg, log: lg, mux: NewMux(ln, lg)}
	n.MetaFSM = NewMetaFSM(onMetaChange)
	self := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(cfg.ID), Address: raft.ServerAddress(n.mux.Addr().String())}

	n.Meta, err = n.openGroup("meta", n.MetaFSM)
	if err != nil {
		return nil, errors.Join(err, n.Close())
	}
	if err := n.Meta.BootstrapIfNew([]raft.Server{self}); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	for i := range cfg.DataGroups {
		name := fmt.Sprintf("data-%d", i)
		fsm, err := NewDataFSM(DataFSMConfig{
			Dir:     filepath.Join(cfg.Dir, name, "partitions"),
			Segment: cfg.Segment,
			Logger:  lg.With("group", name),
		})
		if err != nil {
			return nil, errors.Join(err, n.Close())
		}
		g, err := n.openGroup(name, fsm)
		if err != nil {
			return nil, errors.Join(err, fsm.Close(), n.Close())
		}
		n.data = append(n.data, &DataGroup{ID: uint32(i), Group: g, FSM: fsm})
		if err := g.BootstrapIfNew([]raft.Server{self}); err != nil {
			return nil, errors.Join(err, n.Close())
		}
	}
	return n, nil
}

func (n *Node) openGroup(name string, fsm raft.FSM) (*Group, error) {
	gc := n.cfg.Raft
	gc.Name = name
	gc.NodeID = n.cfg.ID
	gc.Dir = filepath.Join(n.cfg.Dir, name)
	gc.Logger = n.log.With("group", name)
	g, err := OpenGroup(gc, fsm, n.mux.Layer(name))
	if err != nil {
		return nil, fmt.Errorf("cluster: open group %s: %w", name, err)
	}
	return g, nil
}

// Start waits until every group has a leader and, on the metadata leader,
// records this node and the data groups in the metadata.
func (n *Node) Start(ctx context.Context) error {
	if err := n.Meta.WaitLeader(ctx); err != nil {
		return fmt.Errorf("cluster: metadata group: %w", err)
	}
	for _, d := range n.data {
		if err := d.Group.WaitLeader(ctx); err != nil {
			return fmt.Errorf("cluster: data group %d: %w", d.ID, err)
		}
	}
	if !n.Meta.IsLeader() {
		return nil
	}
	// Barrier: the metadata reflects every committed entry before we
	// decide what is missing.
	if err := n.Meta.Barrier(ctx); err != nil {
		return err
	}
	me := NodeInfo{ID: n.cfg.ID, GRPCAddr: n.cfg.GRPCAddr, ClusterAddr: n.mux.Addr().String()}
	var known NodeInfo
	var missing []DataGroupInfo
	n.MetaFSM.Read(func(s *MetaState) {
		known = s.Nodes[n.cfg.ID]
		for _, d := range n.data {
			if _, ok := s.DataGroups[d.ID]; !ok {
				missing = append(missing, DataGroupInfo{ID: d.ID, Voters: []string{n.cfg.ID}})
			}
		}
	})
	if known != me {
		if _, err := n.Meta.Apply(ctx, RegisterNodeCmd(me)); err != nil {
			return fmt.Errorf("cluster: register node: %w", err)
		}
	}
	if len(missing) > 0 {
		if _, err := n.Meta.Apply(ctx, SetDataGroupsCmd(missing)); err != nil {
			return fmt.Errorf("cluster: record data groups: %w", err)
		}
	}
	// Entries committed before a restart are applied again once the
	// groups have leaders; wait for that so reads see them.
	for _, d := range n.data {
		if err := d.Group.Barrier(ctx); err != nil {
			return fmt.Errorf("cluster: data group %d: %w", d.ID, err)
		}
	}
	return nil
}

// DataGroup returns the data group with that id, or nil.
func (n *Node) DataGroup(id uint32) *DataGroup {
	if int(id) >= len(n.data) {
		return nil
	}
	return n.data[id]
}

// DataGroups returns the node's data groups.
func (n *Node) DataGroups() []*DataGroup { return slices.Clone(n.data) }

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// ClusterAddr returns the address the cluster port listens on.
func (n *Node) ClusterAddr() string { return n.mux.Addr().String() }

// Close shuts every group down (data groups first, then the metadata
// group), closes the partitions and the cluster port. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		for _, d := range n.data {
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
