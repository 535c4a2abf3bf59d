package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// membTestConfig returns a config for a member on 127.0.0.1 with a free
// port (memberlist picks one for port 0) and timings fast enough for tests:
// a crashed member is declared failed after about a second.
func membTestConfig(id string) MembershipConfig {
	cfg := DefaultMembershipConfig()
	cfg.NodeID = id
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Tags = membTestTags(id)
	cfg.JoinAttempts = 2
	cfg.JoinBackoff = 50 * time.Millisecond
	cfg.ProbeInterval = 200 * time.Millisecond
	cfg.ProbeTimeout = 100 * time.Millisecond
	cfg.SuspicionMult = 2
	cfg.GossipInterval = 50 * time.Millisecond
	cfg.PushPullInterval = 2 * time.Second
	cfg.TCPTimeout = time.Second
	cfg.BroadcastTimeout = time.Second
	cfg.LeavePropagateDelay = 100 * time.Millisecond
	cfg.ReapInterval = 100 * time.Millisecond
	return cfg
}

func membTestTags(id string) map[string]string {
	return map[string]string{"grpc_addr": id + ":grpc", "cluster_addr": id + ":cluster"}
}

// startMember starts a member that the test closes.
func startMember(t *testing.T, cfg MembershipConfig) *Membership {
	t.Helper()
	m, err := NewMembership(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start member %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close member %s: %v", cfg.NodeID, err)
		}
	})
	return m
}

// startCluster starts members with the given ids, each joining the first.
func startCluster(t *testing.T, ids ...string) []*Membership {
	t.Helper()
	var ms []*Membership
	for _, id := range ids {
		cfg := membTestConfig(id)
		if len(ms) > 0 {
			cfg.Join = []string{ms[0].LocalMember().Addr}
		}
		ms = append(ms, startMember(t, cfg))
	}
	for _, m := range ms {
		wait.For(t, 5*time.Second, m.LocalMember().ID+" sees all members alive", func() bool {
			return countStatus(m, MemberStatusAlive) == len(ids)
		})
	}
	return ms
}

// waitMemberEvent reads m's events until one of kind about id arrives,
// skipping others, and fails the test after d.
func waitMemberEvent(t *testing.T, m *Membership, kind MemberEventKind, id string, d time.Duration) MemberEvent {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-m.Events():
			if !ok {
				t.Fatalf("%s: events closed while waiting for %s of %s", m.LocalMember().ID, kind, id)
			}
			if ev.Kind == kind && ev.Member.ID == id {
				return ev
			}
		case <-timer.C:
			t.Fatalf("%s: no %s event for %s within %v", m.LocalMember().ID, kind, id, d)
		}
	}
}

// waitMemberEvents waits for an event of kind for each of ids, in any order.
func waitMemberEvents(t *testing.T, m *Membership, kind MemberEventKind, d time.Duration, ids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for len(want) > 0 {
		select {
		case ev, ok := <-m.Events():
			if !ok {
				t.Fatalf("%s: events closed while waiting for %s of %v", m.LocalMember().ID, kind, ids)
			}
			if ev.Kind == kind {
				delete(want, ev.Member.ID)
			}
		case <-timer.C:
			t.Fatalf("%s: no %s event for %v within %v", m.LocalMember().ID, kind, slices.Sorted(maps.Keys(want)), d)
		}
	}
}

func memberByID(m *Membership, id string) (Member, bool) {
	for _, mem := range m.Members() {
		if mem.ID == id {
			return mem, true
		}
	}
	return Member{}, false
}

func countStatus(m *Membership, status string) int {
	n := 0
	for _, mem := range m.Members() {
		if mem.Status == status {
			n++
		}
	}
	return n
}

func TestMembershipFormsCluster(t *testing.T) {
	ms := startCluster(t, "a", "b", "c")
	a, c := ms[0], ms[2]

	// The first event is always the node's own join.
	select {
	case ev := <-a.Events():
		if ev.Kind != MemberJoin || ev.Member.ID != "a" {
			t.Fatalf("first event of a = %+v, want its own join", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	// Gossip may deliver b's and c's joins in either order.
	waitMemberEvents(t, a, MemberJoin, 10*time.Second, "b", "c")

	for _, m := range ms {
		local := m.LocalMember()
		if !strings.HasPrefix(local.Addr, "127.0.0.1:") || strings.HasSuffix(local.Addr, ":0") {
			t.Errorf("%s: local addr %q, want 127.0.0.1 with the bound port", local.ID, local.Addr)
		}
		members := m.Members()
		if len(members) != 3 {
			t.Fatalf("%s sees %d members, want 3", local.ID, len(members))
		}
		for i, want := range []string{"a", "b", "c"} {
			got := members[i]
			if got.ID != want || got.Status != MemberStatusAlive || !maps.Equal(got.Tags, membTestTags(want)) {
				t.Errorf("%s sees %+v, want %s alive with tags %v", local.ID, got, want, membTestTags(want))
			}
			if got.Addr != ms[i].LocalMember().Addr {
				t.Errorf("%s sees %s at %s, want %s", local.ID, want, got.Addr, ms[i].LocalMember().Addr)
			}
		}
	}

	tags := map[string]string{"grpc_addr": "c:grpc2", "cluster_addr": "c:cluster"}
	if err := c.SetTags(tags); err != nil {
		t.Fatal(err)
	}
	if ev := waitMemberEvent(t, a, MemberUpdate, "c", 10*time.Second); !maps.Equal(ev.Member.Tags, tags) {
		t.Errorf("update event tags = %v, want %v", ev.Member.Tags, tags)
	}
}

func TestMembershipLeaveAndFail(t *testing.T) {
	ms := startCluster(t, "a", "b", "c")
	a, b, c := ms[0], ms[1], ms[2]

	// c leaves gracefully: the others see Leave, not Fail.
	if err := c.Leave(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Membership{a, b} {
		waitMemberEvent(t, m, MemberLeave, "c", 10*time.Second)
		if mem, _ := memberByID(m, "c"); mem.Status != MemberStatusLeft {
			t.Errorf("%s sees c as %q, want left", m.LocalMember().ID, mem.Status)
		}
	}
	if _, err := c.Join([]string{a.LocalMember().Addr}); err == nil {
		t.Error("join after leave succeeded, want an error")
	}

	// b crashes (Close without Leave): a sees Fail within a few seconds.
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitMemberEvent(t, a, MemberFail, "b", 10*time.Second)
	t.Logf("failure detected after %v", time.Since(start))
	if mem, _ := memberByID(a, "b"); mem.Status != MemberStatusFailed {
		t.Errorf("a sees b as %q, want failed", mem.Status)
	}

	// A failed member stays until an operator removes it.
	if err := a.RemoveFailed("a"); !errors.Is(err, ErrMemberAlive) {
		t.Errorf("RemoveFailed(alive) = %v, want ErrMemberAlive", err)
	}
	if err := a.RemoveFailed("b"); err != nil {
		t.Fatal(err)
	}
	waitMemberEvent(t, a, MemberLeave, "b", 10*time.Second)
	if mem, _ := memberByID(a, "b"); mem.Status != MemberStatusLeft {
		t.Errorf("a sees b as %q after RemoveFailed, want left", mem.Status)
	}
}

func TestMembershipReapsFailedMemberAfterTimeout(t *testing.T) {
	cfgA := membTestConfig("a")
	cfgA.ReconnectTimeout = 300 * time.Millisecond
	a := startMember(t, cfgA)
	cfgB := membTestConfig("b")
	cfgB.Join = []string{a.LocalMember().Addr}
	b := startMember(t, cfgB)
	wait.For(t, 5*time.Second, "a sees b", func() bool { return countStatus(a, MemberStatusAlive) == 2 })

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitMemberEvent(t, a, MemberFail, "b", 10*time.Second)
	waitMemberEvent(t, a, MemberReap, "b", 10*time.Second)
	if _, ok := memberByID(a, "b"); ok {
		t.Error("a still lists b after reaping it")
	}
}

// deadAddr returns a 127.0.0.1 address where nothing listens (TCP or UDP).
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestMembershipJoinUnreachable(t *testing.T) {
	dead := deadAddr(t)
	cfg := membTestConfig("lonely")
	cfg.Join = []string{dead}
	cfg.JoinAttempts = 3
	start := time.Now()
	m, err := NewMembership(context.Background(), cfg)
	if err == nil {
		m.Close()
		t.Fatal("NewMembership joined a dead address")
	}
	if !errors.Is(err, ErrJoinFailed) || !strings.Contains(err.Error(), dead) {
		t.Errorf("error %q: want ErrJoinFailed naming %s", err, dead)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("join took %v", d)
	}

	a := startMember(t, membTestConfig("a"))
	if n, err := a.Join([]string{dead}); n != 0 || !errors.Is(err, ErrJoinFailed) || !strings.Contains(err.Error(), dead) {
		t.Errorf("Join(dead) = %d, %v; want 0 and ErrJoinFailed naming %s", n, err, dead)
	}
}

func TestMembershipCloseIdempotentNoLeak(t *testing.T) {
	baseline := runtime.NumGoroutine()

	ms := startCluster(t, "a", "b")
	a, b := ms[0], ms[1]
	if err := b.Leave(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := a.Close(); err != nil {
				t.Errorf("close a: %v", err)
			}
		})
	}
	wg.Wait()
	for _, m := range []*Membership{a, b, a, b} {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	for _, m := range ms {
		waitEventsClosed(t, m)
		if _, err := m.Join([]string{"127.0.0.1:1"}); !errors.Is(err, ErrClosed) {
			t.Errorf("Join after Close = %v, want ErrClosed", err)
		}
		if err := m.Leave(); !errors.Is(err, ErrClosed) {
			t.Errorf("Leave after Close = %v, want ErrClosed", err)
		}
		if err := m.SetTags(nil); !errors.Is(err, ErrClosed) {
			t.Errorf("SetTags after Close = %v, want ErrClosed", err)
		}
	}

	// A constructor that fails to join cleans up after itself too.
	cfg := membTestConfig("c")
	cfg.Join = []string{deadAddr(t)}
	cfg.JoinAttempts = 1
	if _, err := NewMembership(context.Background(), cfg); err == nil {
		t.Fatal("joined a dead address")
	}
	wait.Goroutines(t, 5*time.Second, baseline)
}

// waitEventsClosed reads m's events until the channel is closed.
func waitEventsClosed(t *testing.T, m *Membership) {
	t.Helper()
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-m.Events():
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatal("events not closed by Close")
		}
	}
}

func TestMembershipSnapshotRejoinsAfterRestart(t *testing.T) {
	a := startMember(t, membTestConfig("a"))
	cfgB := membTestConfig("b")
	cfgB.SnapshotPath = filepath.Join(t.TempDir(), "serf.snapshot")
	cfgB.Join = []string{a.LocalMember().Addr}
	b := startMember(t, cfgB)
	// Serf's snapshotter sees each event before Events does; once b has
	// delivered a's join, Close records it in the snapshot.
	waitMemberEvent(t, b, MemberJoin, "a", 10*time.Second)

	// b crashes; restarted on its address, without Join, it finds a through
	// its snapshot.
	cfgB.BindAddr = b.LocalMember().Addr
	cfgB.Join = nil
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitMemberEvent(t, a, MemberFail, "b", 10*time.Second)
	b2 := startMember(t, cfgB)
	waitMemberEvent(t, a, MemberJoin, "b", 10*time.Second)
	wait.For(t, 5*time.Second, "restarted b sees a", func() bool { return countStatus(b2, MemberStatusAlive) == 2 })
}

func TestMembershipConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*MembershipConfig)
		ok     bool
	}{
		{"default with id", func(*MembershipConfig) {}, true},
		{"empty host", func(c *MembershipConfig) { c.BindAddr = ":7946" }, true},
		{"ipv6", func(c *MembershipConfig) { c.BindAddr = "[::1]:0"; c.AdvertiseAddr = "[::1]:7946" }, true},
		{"no id", func(c *MembershipConfig) { c.NodeID = "" }, false},
		{"no port", func(c *MembershipConfig) { c.BindAddr = "127.0.0.1" }, false},
		{"hostname", func(c *MembershipConfig) { c.BindAddr = "localhost:7946" }, false},
		{"bad port", func(c *MembershipConfig) { c.BindAddr = "127.0.0.1:70000" }, false},
		{"advertise without ip", func(c *MembershipConfig) { c.AdvertiseAddr = ":7946" }, false},
		{"no join attempts", func(c *MembershipConfig) { c.JoinAttempts = 0 }, false},
		{"zero probe interval", func(c *MembershipConfig) { c.ProbeInterval = 0 }, false},
		{"probe timeout too long", func(c *MembershipConfig) { c.ProbeTimeout = c.ProbeInterval }, false},
		{"zero suspicion", func(c *MembershipConfig) { c.SuspicionMult = 0 }, false},
		{"zero reconnect timeout", func(c *MembershipConfig) { c.ReconnectTimeout = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultMembershipConfig()
			cfg.NodeID = "n1"
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			if !tt.ok {
				if _, err := NewMembership(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("NewMembership = %v, want ErrInvalidConfig", err)
				}
			}
		})
	}
}

func TestSerfLogWriter(t *testing.T) {
	var buf bytes.Buffer
	logger := newSerfLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	logger.Printf("[WARN] memberlist: Was able to connect to %s", "x")
	logger.Printf("[ERR] serf: Failed to broadcast")
	logger.Printf("[DEBUG] memberlist: Stream connection")
	logger.Printf("[INFO] serf: EventMemberJoin: a 127.0.0.1")
	logger.Printf("no level")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=WARN msg="Was able to connect to x" component=memberlist`,
		`level=ERROR msg="Failed to broadcast" component=serf`,
		`level=DEBUG msg="Stream connection" component=memberlist`,
		`level=INFO msg="EventMemberJoin: a 127.0.0.1" component=serf`,
		`level=INFO msg="no level" component=serf`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines:\n%s", len(lines), buf.String())
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d = %q, want suffix %q", i, lines[i], w)
		}
	}
}
