package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/cluster/mux/muxtest"
	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/raft"
)

// openTLSNode opens (without Start) a node whose cluster port presents a
// certificate for certID, joined to join's gossip address when set, that
// admits members by their certificates.
func openTLSNode(t *testing.T, pki *testPKI, id, certID string, join []string, tune func(*NodeConfig)) *Node {
	t.Helper()
	cfg := testNodeConfig(id, t.TempDir(), join)
	cfg.ClusterTLS = pki.nodeTLS(t, certID)
	// Every node checks admissions (as the agent sets it): leadership of
	// the metadata group may move to any voter during the test.
	cfg.AdmitMember = VerifyMemberTLS(cfg.ClusterTLS, 2*time.Second)
	if tune != nil {
		tune(&cfg)
	}
	n, err := OpenNode(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("open node %s: %v", id, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close node %s: %v", id, err)
		}
	})
	return n
}

func startNode(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start node %s: %v", n.ID(), err)
	}
}

// inMetaConfig reports whether id is a server of the metadata group.
func inMetaConfig(t *testing.T, n *Node, id string) bool {
	t.Helper()
	servers, err := n.Meta.Servers()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == id })
}

// With ClusterTLS and AdmitMember = VerifyMemberTLS, the metadata leader
// registers and adds a member whose certificate names it, and never one
// whose certificate names another node, saying why in its log (once).
func TestAdmitMemberByCertificate(t *testing.T) {
	pki := newTestPKI(t)
	var logs muxtest.LogBuffer
	a := openTLSNode(t, pki, "a", "a", nil, func(c *NodeConfig) {
		c.AdmitMember = VerifyMemberTLS(c.ClusterTLS, 2*time.Second)
		c.Logger = logs.Logger(slog.LevelInfo)
	})
	startNode(t, a)
	join := []string{a.GossipAddr()}
	b := openTLSNode(t, pki, "b", "b", join, nil)
	start := time.Now()
	startNode(t, b) // returns once the leader has registered b
	wait.NoError(t, 10*time.Second, "b in the metadata group", func() error {
		if r := a.MetaRole("b"); r != "voter" {
			return fmt.Errorf("b is %s", r)
		}
		return nil
	})
	t.Logf("b admitted and a metadata voter after %v", time.Since(start).Round(time.Millisecond))

	// c's certificate says d: c gossips as c, but is never registered.
	c := openTLSNode(t, pki, "c", "d", join, nil)
	wait.For(t, 10*time.Second, "a sees c alive in gossip", func() bool {
		return slices.ContainsFunc(a.Members(), func(m Member) bool { return m.ID == "c" && m.Status == MemberStatusAlive })
	})
	wait := 30 * a.Config().ReconcileInterval
	tick := time.NewTicker(a.Config().ReconcileInterval)
	defer tick.Stop()
	for until := time.Now().Add(wait); time.Now().Before(until); <-tick.C {
		if _, ok := a.MetaFSM.NodeInfo("c"); ok {
			t.Fatal("the leader registered c, whose certificate names d")
		}
		if inMetaConfig(t, a, "c") {
			t.Fatal("c is in the metadata group's raft configuration")
		}
	}
	for _, dg := range a.DataGroups() {
		info, _ := a.MetaFSM.DataGroupInfo(dg.ID)
		if slices.Contains(info.Voters, "c") {
			t.Fatalf("c is a voter of data group %d", dg.ID)
		}
	}
	out := logs.String()
	warn := `msg="member not admitted: it stays out of the metadata and of every raft group" component=cluster id=c`
	if n := strings.Count(out, warn); n != 1 || !strings.Contains(out, `presents a certificate for node \"d\"`) {
		t.Fatalf("the leader's log has %d warnings about c (want 1, naming d):\n%s", n, out)
	}
	if _, ok := c.MetaFSM.NodeInfo("c"); ok {
		t.Fatal("c believes it is registered")
	}
}

// A member that comes back at another cluster address is checked again.
func TestAdmitRechecksNewAddress(t *testing.T) {
	pki := newTestPKI(t)
	var mu sync.Mutex
	var checks []string
	checked := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(checks, want)
	}
	a := openTLSNode(t, pki, "a", "a", nil, func(c *NodeConfig) {
		// b is a non-voter, so that a keeps its quorum while b is down.
		c.MetadataVoters = 1
		verify := VerifyMemberTLS(c.ClusterTLS, 2*time.Second)
		c.AdmitMember = func(ctx context.Context, id, addr string) error {
			mu.Lock()
			checks = append(checks, id+"@"+addr)
			mu.Unlock()
			return verify(ctx, id, addr)
		}
	})
	startNode(t, a)
	dir := t.TempDir()
	gossip := ""
	cfg := func(c *NodeConfig) {
		c.Dir = dir
		if gossip != "" {
			c.Gossip.BindAddr = gossip // a gossip name cannot move at once
		}
	}
	b := openTLSNode(t, pki, "b", "b", []string{a.GossipAddr()}, cfg)
	startNode(t, b)
	first := b.ClusterAddr()
	gossip = b.GossipAddr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// b restarts on a new cluster port (same data, same id).
	b2 := openTLSNode(t, pki, "b", "b", []string{a.GossipAddr()}, cfg)
	startNode(t, b2)
	wait.NoError(t, 10*time.Second, "b registered at its new address", func() error {
		if info, _ := a.MetaFSM.NodeInfo("b"); info.ClusterAddr != b2.ClusterAddr() {
			return fmt.Errorf("b registered at %s", info.ClusterAddr)
		}
		return nil
	})
	if !checked("b@"+first) || !checked("b@"+b2.ClusterAddr()) {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("admission checks %v; want b at %s and at %s", checks, first, b2.ClusterAddr())
	}
	if err := a.cfg.AdmitMember(context.Background(), "b", first); err == nil || errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("checking b's old, closed address: %v; want a dial error", err)
	}
}
