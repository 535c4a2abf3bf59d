package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/stratalog/strata/cluster/mux"
)

// Admission. Gossip tells the metadata leader that a member exists and at
// which cluster address; anything that can gossip with the cluster could
// claim that. With NodeConfig.AdmitMember set, the leader registers a
// member as a node (RegisterNodeCmd) only after AdmitMember accepted the
// pair (id, cluster address); VerifyMemberTLS, the standard check, proves
// by a TLS handshake that whoever listens at that address holds a
// certificate for that node id. Everything that makes a node a raft voter
// or a replica holder (the metadata group's configuration, data group
// placement, replacement of dead nodes) reads MetaFSM.NodeInfos, so a
// member that was not admitted never gets any of them.
//
// A member already registered at the same cluster address counts as
// admitted: a previous leader admitted it (or registered it before
// admission was turned on). Successful checks are remembered for the
// leader's term; a failed one is retried with a backoff (1 s doubling to
// 30 s, so that a member that keeps failing costs little) and warned about
// at most once a minute per member.

const (
	admitRetryMin  = time.Second
	admitRetryMax  = 30 * time.Second
	admitWarnEvery = time.Minute
)

type admitKey struct{ id, addr string }

// admitFailure is the memory of a member's failed checks.
type admitFailure struct {
	addr     string        // the cluster address that failed
	backoff  time.Duration // the current wait between checks
	next     time.Time     // no new check before
	lastWarn time.Time
}

// admitState is the admission memory of the reconcile goroutine.
type admitState struct {
	term   uint64            // the metadata term ok belongs to
	ok     map[admitKey]bool // checks passed in term
	failed map[string]*admitFailure
}

func (a *admitState) init() {
	a.ok = map[admitKey]bool{}
	a.failed = map[string]*admitFailure{}
}

// admitted reports whether member id at clusterAddr may be registered.
// Caller is the reconcile goroutine of the metadata leader.
func (n *Node) admitted(ctx context.Context, id, clusterAddr string) bool {
	if n.cfg.AdmitMember == nil || id == n.cfg.ID {
		return true
	}
	if known, ok := n.MetaFSM.NodeInfo(id); ok && known.ClusterAddr == clusterAddr {
		return true
	}
	a := &n.rec.admit
	if term := n.Meta.Raft().CurrentTerm(); term != a.term {
		a.term, a.ok = term, map[admitKey]bool{}
	}
	key := admitKey{id, clusterAddr}
	if a.ok[key] {
		return true
	}
	now := time.Now()
	f := a.failed[id]
	if f != nil && f.addr == clusterAddr && now.Before(f.next) {
		return false
	}
	err := n.cfg.AdmitMember(ctx, id, clusterAddr)
	if err == nil {
		a.ok[key] = true
		delete(a.failed, id)
		n.log.Info("admitted member", "id", id, "raft", clusterAddr)
		return true
	}
	if ctx.Err() != nil {
		return false // shutting down or out of time: not the member's fault
	}
	if f == nil || f.addr != clusterAddr {
		// A new address is checked afresh, but the warnings stay limited.
		f = &admitFailure{addr: clusterAddr, lastWarn: warnedAt(f)}
		a.failed[id] = f
	}
	f.backoff = min(max(2*f.backoff, admitRetryMin), admitRetryMax)
	f.next = now.Add(f.backoff)
	if now.Sub(f.lastWarn) >= admitWarnEvery {
		f.lastWarn = now
		n.log.Warn("member not admitted: it stays out of the metadata and of every raft group",
			"id", id, "raft", clusterAddr, "err", err, "retry_in", f.backoff)
	}
	return false
}

func warnedAt(f *admitFailure) time.Time {
	if f == nil {
		return time.Time{}
	}
	return f.lastWarn
}

// forgetAdmissions drops the failures of members that gossip has
// forgotten (reaped), so that the map does not grow with departed members.
func (n *Node) forgetAdmissions(members []Member) {
	if len(n.rec.admit.failed) == 0 {
		return
	}
	known := make(map[string]bool, len(members))
	for _, m := range members {
		known[m.ID] = true
	}
	for id := range n.rec.admit.failed {
		if !known[id] {
			delete(n.rec.admit.failed, id)
		}
	}
}

// VerifyMemberTLS returns an admission check (NodeConfig.AdmitMember) that
// dials a member's cluster address with ct.Client, completes the TLS
// handshake within timeout and accepts the member only if its certificate
// names the node id it claims in gossip. It sends no mux header: it closes
// right after the handshake, which the member's mux logs at debug only.
func VerifyMemberTLS(ct *mux.ClusterTLS, timeout time.Duration) func(ctx context.Context, id, clusterAddr string) error {
	return func(ctx context.Context, id, clusterAddr string) error {
		if ct == nil || ct.Client == nil || ct.PeerID == nil {
			return fmt.Errorf("%w: admit %s: cluster TLS is not configured", ErrNotAdmitted, id)
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", clusterAddr)
		if err != nil {
			return fmt.Errorf("cluster: admit %s: dial %s: %w", id, clusterAddr, err)
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl) // bounds close_notify too
		}
		tc := tls.Client(conn, ct.ClientConfig(clusterAddr))
		defer tc.Close()
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("cluster: admit %s: tls handshake with %s: %w", id, clusterAddr, err)
		}
		got, err := ct.PeerID(tc.ConnectionState())
		if err != nil {
			return fmt.Errorf("cluster: admit %s: certificate at %s names no node: %w", id, clusterAddr, err)
		}
		if got != id {
			return fmt.Errorf("%w: member %q at %s presents a certificate for node %q",
				ErrNotAdmitted, id, clusterAddr, got)
		}
		return nil
	}
}
