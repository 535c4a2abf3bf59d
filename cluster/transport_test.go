package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/cluster/mux/muxtest"

	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/cluster/mux"
)

// Tests of the cluster port's mux (package mux) together with what cluster
// puts on it: raft groups, the FaultNet, the admission check.

func TestMuxTLSRaftGroups(t *testing.T) {
	baseline := runtime.NumGoroutine()
	pki := newTestPKI(t)
	groupNames := []string{"meta", "data-0", "data-1"}
	nodes := make([]*testNode, 3)
	var servers []raft.Server
	for i := range nodes {
		id := fmt.Sprintf("n%d", i+1)
		ct := pki.nodeTLS(t, id)
		m, err := mux.NewTLSMux(mustListen(t), ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := &testNode{id: id, mux: m, groups: map[string]*Group{}, fsms: map[string]*testFSM{}}
		t.Cleanup(func() { n.close(t) })
		nodes[i] = n
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(m.Addr().String())})
	}
	base := t.TempDir()
	for _, n := range nodes {
		for _, name := range groupNames {
			fsm := newTestFSM()
			g, err := OpenGroup(testGroupConfig(name, n.id, fmt.Sprintf("%s/%s/%s", base, n.id, name)), fsm, n.mux.Layer(name))
			if err != nil {
				t.Fatal(err)
			}
			n.groups[name], n.fsms[name] = g, fsm
			if err := g.BootstrapIfNew(servers); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range groupNames {
		var gs []*Group
		for _, n := range nodes {
			gs = append(gs, n.groups[name])
		}
		var want []string
		for i := range 10 {
			cmd := fmt.Sprintf("%s-%d", name, i)
			applyOnLeader(t, gs, cmd)
			want = append(want, cmd)
		}
		for _, n := range nodes {
			n.fsms[name].waitLen(t, len(want))
			if got := n.fsms[name].commands(); !slices.Equal(got, want) {
				t.Fatalf("node %s group %s holds %q, want %q", n.id, name, got, want)
			}
		}
	}
	for _, n := range nodes {
		n.close(t)
	}
	wait.Goroutines(t, 5*time.Second, baseline)
}

// Under a FaultNet the TLS handshake runs over the fault connection (a cut
// link breaks a TLS connection too), and closing a connection whose peer
// is stalled (close_notify cannot be sent) returns within about a second.
func TestMuxTLSFaultNet(t *testing.T) {
	pki := newTestPKI(t)
	f := NewFaultNet(1)
	a := faultEnd{m: newTestTLSMux(t, pki.nodeTLS(t, "a"), nil)}
	b := faultEnd{m: newTestTLSMux(t, pki.nodeTLS(t, "b"), nil)}
	f.attach(a.m, "a")
	f.attach(b.m, "b")
	a.l, b.l = a.m.Layer("g"), b.m.Layer("g")
	_, s := roundTrip(t, a, b)
	f.Isolate("b")
	muxtest.ExpectClosedByPeer(t, s) // the cut broke the TLS connection: it runs over the FaultNet's
	if _, err := a.l.Dial(serverAddr(b.m), time.Second); !errors.Is(err, ErrLinkCut) {
		t.Fatalf("dial over a cut link: %v, want ErrLinkCut", err)
	}
	f.Heal()
	c, _ := roundTrip(t, a, b)

	f.Stall("b")
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("held"))
		wrote <- err
	}()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- a.l.Close() }()
	select {
	case <-done:
	case <-time.After(6 * time.Second): // the mux's TLS close timeout (1 s) and then some
		t.Fatal("closing a layer whose peer is stalled did not return")
	}
	t.Logf("layer close with a stalled peer took %v", time.Since(start))
	select {
	case <-wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled write outlived its connection")
	}
	f.Heal()
}

// VerifyMemberTLS accepts a member whose certificate names it and refuses
// one whose certificate names another node; the probed mux logs the probe's
// hang-up at debug only.
func TestVerifyMemberTLS(t *testing.T) {
	pki := newTestPKI(t)
	var logs muxtest.LogBuffer
	m := newTestTLSMux(t, pki.nodeTLS(t, "b"), logs.Logger(slog.LevelDebug))
	verify := VerifyMemberTLS(pki.nodeTLS(t, "leader"), 2*time.Second)
	ctx := context.Background()
	if err := verify(ctx, "b", m.Addr().String()); err != nil {
		t.Fatalf("member b with a certificate for b: %v", err)
	}
	err := verify(ctx, "c", m.Addr().String())
	if !errors.Is(err, ErrNotAdmitted) || !strings.Contains(err.Error(), `"c"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("member c with a certificate for b: %v; want ErrNotAdmitted naming both", err)
	}
	wait.For(t, 5*time.Second, "the probed mux logs the probes' hang-ups", func() bool {
		return strings.Count(logs.String(), "peer closed after the TLS handshake") >= 2
	})
	if s := logs.String(); strings.Contains(s, "level=INFO") || strings.Contains(s, "level=WARN") ||
		!strings.Contains(s, "peer closed after the TLS handshake") {
		t.Fatalf("the probed mux logged above Debug, or not the probe's hang-up:\n%s", s)
	}
	other := newTestPKI(t)
	if err := VerifyMemberTLS(other.nodeTLS(t, "leader"), 2*time.Second)(ctx, "b", m.Addr().String()); err == nil {
		t.Fatal("a verifier of another CA accepted b")
	}
	plain := newTestTLSMux(t, nil, nil)
	start := time.Now()
	if err := VerifyMemberTLS(pki.nodeTLS(t, "leader"), 500*time.Millisecond)(ctx, "p", plain.Addr().String()); err == nil {
		t.Fatal("a plaintext member was admitted")
	}
	t.Logf("probe of a plaintext mux failed after %v", time.Since(start))
}
