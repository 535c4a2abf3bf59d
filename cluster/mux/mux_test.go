package mux

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/cluster/mux/muxtest"

	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/raft"
)

// newTestMux starts a mux on 127.0.0.1:0 that the test closes.
func newTestMux(t *testing.T, headerTimeout time.Duration) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMux(ln, nil, headerTimeout)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("mux close: %v", err)
		}
	})
	return m
}

func TestMuxRoutesByGroup(t *testing.T) {
	server := newTestMux(t, time.Second)
	client := newTestMux(t, time.Second)
	la, lb := server.Layer("meta"), server.Layer("data-0")
	if got, want := la.Addr().String(), server.Addr().String(); got != want {
		t.Fatalf("layer addr %s, want mux addr %s", got, want)
	}
	for _, tc := range []struct {
		group string
		layer interface{ Accept() (net.Conn, error) }
	}{{"meta", la}, {"data-0", lb}} {
		t.Run(tc.group, func(t *testing.T) {
			dialer := client.Layer(tc.group)
			defer dialer.Close()
			out, err := dialer.Dial(serverAddr(server), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			in := muxtest.AcceptOne(t, tc.layer)
			msg := []byte("hello " + tc.group)
			if _, err := out.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(in, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("got %q, want %q", got, msg)
			}
			// Closing the dialling layer closes the connection it made.
			if err := dialer.Close(); err != nil {
				t.Fatal(err)
			}
			muxtest.ExpectClosedByPeer(t, in)
		})
	}
}

func TestMuxRejectsBadConnections(t *testing.T) {
	m := newTestMux(t, 200*time.Millisecond)
	l := m.Layer("meta")
	defer l.Close()
	baseline := runtime.NumGoroutine()

	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"unknown group", []byte("S\x05other")},
		{"wrong magic", []byte("X\x04meta")},
		{"raft rpc without header", []byte{0, 0x81, 0xa1}},
		{"empty name", []byte("S\x00")},
		{"bad name bytes", []byte("S\x04me/a")},
		{"short name then silence", []byte("S\x04me")},
		{"nothing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", m.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			muxtest.ExpectClosedByPeer(t, c)
		})
	}
	t.Run("client hangs up mid-header", func(t *testing.T) {
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("S\x04m")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	wait.For(t, 5*time.Second, "no pending handshakes", func() bool { return m.pendingCount() == 0 })
	wait.Goroutines(t, 5*time.Second, baseline)
	if n := l.(*muxLayer).connCount(); n != 0 {
		t.Fatalf("layer holds %d connections, want 0", n)
	}
}

func TestMuxLayerCloseKeepsMux(t *testing.T) {
	m := newTestMux(t, time.Second)
	client := newTestMux(t, time.Second)
	la, lb := m.Layer("a"), m.Layer("b")
	dialA, dialB := client.Layer("a"), client.Layer("b")

	inA, err := dialA.Dial(serverAddr(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer inA.Close()
	_ = muxtest.AcceptOne(t, la)

	if err := la.Close(); err != nil {
		t.Fatal(err)
	}
	if err := la.Close(); err != nil {
		t.Fatalf("second layer close: %v", err)
	}
	// Closing the layer closed the connection it had accepted.
	muxtest.ExpectClosedByPeer(t, inA)
	if _, err := la.Accept(); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept on closed layer: %v, want ErrClosed and net.ErrClosed", err)
	}
	if _, err := la.(*muxLayer).Dial(serverAddr(client), time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial on closed layer: %v, want ErrClosed", err)
	}

	// "a" is unregistered: a connection naming it is closed.
	c, err := dialA.Dial(serverAddr(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	muxtest.ExpectClosedByPeer(t, c)

	// The mux and the other layer still work.
	cb, err := dialB.Dial(serverAddr(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	_ = muxtest.AcceptOne(t, lb)

	// "a" can be registered again.
	la = m.Layer("a")
	defer la.Close()
	c2, err := dialA.Dial(serverAddr(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = muxtest.AcceptOne(t, la)
}

func TestMuxLayerPanics(t *testing.T) {
	m := newTestMux(t, time.Second)
	_ = m.Layer("meta")
	for _, tc := range []struct{ desc, name string }{
		{"duplicate", "meta"},
		{"empty", ""},
		{"space", "a b"},
		{"256 bytes", strings.Repeat("x", 256)},
	} {
		name := tc.name
		t.Run(tc.desc, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("Layer(%q) did not panic", name)
				}
			}()
			m.Layer(name)
		})
	}
}

func TestMuxCloseIdempotent(t *testing.T) {
	baseline := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMux(ln, nil, time.Minute)
	l := m.Layer("meta")

	// A connection stuck before its header, and one handed to the layer.
	stuck, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	wait.For(t, 5*time.Second, "pending handshake", func() bool { return m.pendingCount() == 1 })
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peerMux := NewMux(pln, nil)
	peer := peerMux.Layer("meta")
	out, err := peer.Dial(serverAddr(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	_ = muxtest.AcceptOne(t, l)

	acceptErr := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		acceptErr <- err
	}()

	for i := range 3 {
		if err := m.Close(); err != nil {
			t.Fatalf("close #%d: %v", i+1, err)
		}
	}
	select {
	case err := <-acceptErr:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Accept returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after mux Close")
	}
	muxtest.ExpectClosedByPeer(t, stuck)
	muxtest.ExpectClosedByPeer(t, out)
	if _, err := m.Layer("late").Accept(); !errors.Is(err, ErrClosed) {
		t.Fatalf("accept on a layer made after close: %v, want ErrClosed", err)
	}
	if c, err := net.DialTimeout("tcp", m.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("mux listener still accepts after Close")
	}
	if err := peerMux.Close(); err != nil {
		t.Fatal(err)
	}
	wait.Goroutines(t, 5*time.Second, baseline)
}

// serverAddr is m's address as raft names it.
func serverAddr(m *Mux) raft.ServerAddress { return raft.ServerAddress(m.Addr().String()) }
