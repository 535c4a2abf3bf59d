package cluster

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stratalog/strata/cluster/mux/muxtest"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/cluster/mux"
)

// faultEnd is one side of a faultPair: a mux and its layer "g".
type faultEnd struct {
	m *mux.Mux
	l raft.StreamLayer
}

// faultPair is two muxes, a and b, on one FaultNet, with a layer "g" each.
func faultPair(t *testing.T) (*FaultNet, faultEnd, faultEnd) {
	t.Helper()
	f := NewFaultNet(1)
	a, b := faultEnd{m: newTestMux(t)}, faultEnd{m: newTestMux(t)}
	f.attach(a.m, "a")
	f.attach(b.m, "b")
	a.l, b.l = a.m.Layer("g"), b.m.Layer("g")
	return f, a, b
}

// roundTrip dials b from a, sends ping and reads it back through b's side.
func roundTrip(t *testing.T, a, b faultEnd) (net.Conn, net.Conn) {
	t.Helper()
	c, err := a.l.Dial(serverAddr(b.m), time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	s := muxtest.AcceptOne(t, b.l)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	return c, s
}

func TestFaultNetCutAndHeal(t *testing.T) {
	f, la, lb := faultPair(t)
	c, s := roundTrip(t, la, lb)
	f.Isolate("b")
	muxtest.ExpectClosedByPeer(t, s) // the cut broke the open connection
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write over a cut link succeeded")
	}
	if _, err := la.l.Dial(serverAddr(lb.m), time.Second); !errors.Is(err, ErrLinkCut) {
		t.Fatalf("dial over a cut link: %v, want ErrLinkCut", err)
	}
	if f.Broken() != 1 {
		t.Fatalf("broken %d, want 1", f.Broken())
	}
	f.Heal()
	roundTrip(t, la, lb)
}

func TestFaultNetStallHoldsTraffic(t *testing.T) {
	f, la, lb := faultPair(t)
	c, s := roundTrip(t, la, lb)
	f.Stall("a")
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("late"))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("a write of a stalled node went through (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	f.Unstall("a")
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "late" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// Closing a connection releases a write stalled on it.
	f.Stall("b")
	go func() {
		_, err := c.Write([]byte("never"))
		wrote <- err
	}()
	_ = c.Close()
	select {
	case <-wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled write outlived its connection")
	}
}

func TestFaultNetDropsAndDelays(t *testing.T) {
	f, la, lb := faultPair(t)
	f.Set("a", "b", LinkFault{Delay: 50 * time.Millisecond})
	c, _ := roundTrip(t, la, lb)
	start := time.Now()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("a delayed write took %v", d)
	}
	f.Set("a", "b", LinkFault{DropRate: 1})
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrLinkCut) {
		t.Fatalf("write with drop rate 1: %v", err)
	}
}
