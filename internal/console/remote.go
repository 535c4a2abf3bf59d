package console

import (
	"errors"
	"fmt"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/server"
)

// Peers reaches the other nodes' gRPC services with this node's
// identity; *server.Peers, the pool the broker forwards through, is one.
type Peers interface {
	Stub(addr string) (stratav1.StrataClient, error)
}

// stub returns a client of the node at addr.
func (cl *call) stub(addr string) (stratav1.StrataClient, error) {
	if addr == "" {
		return nil, fmt.Errorf("%w: no address for the node that answers this", broker.ErrNotReady)
	}
	s, err := cl.c.peers.Stub(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrRemote, addr, err)
	}
	return s, nil
}

// remoteErr wraps the error of a call forwarded to addr.
func remoteErr(addr string, err error) error {
	if err == nil {
		return nil
	}
	// The same table as the server's forwarding reads the answer's reason
	// back into the domain error (a remote unknown group is one here).
	return fmt.Errorf("%w to %s: %w", ErrRemote, addr, server.FromStatus(addr, err))
}

// partRef is a partition of a topic and where it is led.
type partRef struct {
	Topic string
	broker.PartitionState
}

// leaderOf says where a partition's data is answered: here (local) when
// this node leads it, or when no leader is known (an election: the local
// replica answers, or says why not); else on the leader at addr.
func (cl *call) leaderOf(ps partRef) (addr string, local bool) {
	if ps.LeaderID == "" || ps.LeaderID == cl.c.b.NodeID() {
		return "", true
	}
	return ps.LeaderAddr, false
}

// onLeader runs local when this node answers for ps, else remote with the
// leader's client; a local answer that names another leader (the
// leadership moved meanwhile) is asked again there.
func onLeader[T any](cl *call, ps partRef, local func() (T, error), remote func(stratav1.StrataClient) (T, error)) (T, error) {
	addr, isLocal := cl.leaderOf(ps)
	if isLocal {
		v, err := local()
		var nl *broker.NotLeaderError
		if err == nil || !errors.As(err, &nl) || nl.LeaderAddr == "" || nl.LeaderID == cl.c.b.NodeID() {
			return v, err
		}
		addr = nl.LeaderAddr
	}
	s, err := cl.stub(addr)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := remote(s)
	return v, remoteErr(addr, err)
}

// coordinator returns where consumer groups are answered: here, or the
// address of the metadata leader, which coordinates them.
func (cl *call) coordinator() (addr string, local bool) {
	id, local := cl.c.b.GroupCoordinator()
	if local || id == "" {
		return "", true
	}
	for _, n := range cl.c.b.Nodes() {
		if n.ID == id {
			return n.GRPCAddr, false
		}
	}
	return "", true
}

// onCoordinator runs local on the group coordinator, else remote there.
func onCoordinator[T any](cl *call, local func() (T, error), remote func(stratav1.StrataClient) (T, error)) (T, error) {
	addr, isLocal := cl.coordinator()
	if isLocal {
		return local()
	}
	s, err := cl.stub(addr)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := remote(s)
	return v, remoteErr(addr, err)
}
