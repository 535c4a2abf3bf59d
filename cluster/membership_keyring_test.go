package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

func gossipKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// startKeyedCluster starts members with the given ids and keys, each
// joining the first, and waits until all see each other.
func startKeyedCluster(t *testing.T, keys [][]byte, ids ...string) []*Membership {
	t.Helper()
	var ms []*Membership
	for _, id := range ids {
		cfg := membTestConfig(id)
		cfg.Keys = keys
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

// cannotJoin checks that a member with keys cannot join ms: NewMembership
// fails, and no member of ms ever lists it.
func cannotJoin(t *testing.T, ms []*Membership, id string, keys [][]byte) {
	t.Helper()
	cfg := membTestConfig(id)
	cfg.Keys = keys
	cfg.Join = []string{ms[0].LocalMember().Addr}
	start := time.Now()
	m, err := NewMembership(context.Background(), cfg)
	if err == nil {
		m.Close()
		t.Fatalf("member %s with keys %s joined", id, keyNames(keys))
	}
	if !errors.Is(err, ErrJoinFailed) {
		t.Fatalf("member %s: %v, want ErrJoinFailed", id, err)
	}
	t.Logf("join of %s with keys %s refused after %v: %v", id, keyNames(keys), time.Since(start).Round(time.Millisecond), err)
	for _, m := range ms {
		if _, ok := memberByID(m, id); ok {
			t.Fatalf("%s lists %s, which has keys %s", m.LocalMember().ID, id, keyNames(keys))
		}
	}
}

func keyNames(keys [][]byte) string {
	if len(keys) == 0 {
		return "none"
	}
	s := ""
	for _, k := range keys {
		s += base64.StdEncoding.EncodeToString(k)[:6] + "… "
	}
	return s
}

// keyStep runs a key operation until every one of members answered
// without error. Query answers travel over UDP, and the operation is
// idempotent: an operator repeats it when some members did not answer, and
// so does the test (at most 3 times); a member that answers with an error
// fails the test.
func keyStep(t *testing.T, name string, op func() (KeyResponse, error), members int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		r, err := op()
		if err == nil && r.Members == members && r.Answered == members && r.Failed == 0 {
			return
		}
		if r.Failed > 0 || attempt == 3 {
			t.Fatalf("%s: %+v, %v; want %d members answered, none failed", name, r, err, members)
		}
		t.Logf("%s: %+v, %v; repeating", name, r, err)
	}
}

func TestMembershipEncryptedJoin(t *testing.T) {
	k1 := gossipKey(t)
	ms := startKeyedCluster(t, [][]byte{k1}, "a", "b", "c")
	for _, tc := range []struct {
		name string
		keys [][]byte
	}{{"no key", nil}, {"other key", [][]byte{gossipKey(t)}}} {
		t.Run(tc.name, func(t *testing.T) { cannotJoin(t, ms, "x", tc.keys) })
	}
	// A member with another key besides k1 joins: it encrypts with its
	// primary, k1, and would decrypt with either.
	cfg := membTestConfig("d")
	cfg.Keys = [][]byte{k1, gossipKey(t)}
	cfg.Join = []string{ms[0].LocalMember().Addr}
	_ = startMember(t, cfg)
	wait.For(t, 5*time.Second, "a sees d", func() bool { return countStatus(ms[0], MemberStatusAlive) == 4 })
}

func TestMembershipKeyRotation(t *testing.T) {
	k1, k2 := gossipKey(t), gossipKey(t)
	ms := startKeyedCluster(t, [][]byte{k1}, "a", "b", "c")
	ctx := testCtx(t)
	start := time.Now()
	steps := []struct {
		name string
		op   func(context.Context, []byte) (KeyResponse, error)
		key  []byte
	}{{"install k2", ms[1].InstallKey, k2}, {"use k2", ms[2].UseKey, k2}, {"remove k1", ms[0].RemoveKey, k1}}
	for _, s := range steps {
		keyStep(t, s.name, func() (KeyResponse, error) { return s.op(ctx, s.key) }, 3)
	}
	t.Logf("install, use, remove took %v", time.Since(start))
	l, err := ms[1].ListKeys(ctx)
	b2 := base64.StdEncoding.EncodeToString(k2)
	if err != nil || len(l.Keys) != 1 || l.Keys[b2] != 3 || l.PrimaryKeys[b2] != 3 {
		t.Fatalf("ListKeys: %+v, %v; want k2 on 3 members, primary everywhere", l, err)
	}
	// Removing the primary key is refused by every member.
	if r, err := ms[0].RemoveKey(ctx, k2); err == nil || r.Failed != 3 || len(r.Messages) != 3 {
		t.Fatalf("removing the primary key: %+v, %v; want 3 failures with messages", r, err)
	}
	// The cluster stays connected over a few probe rounds.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for holdUntil := time.Now().Add(time.Second); time.Now().Before(holdUntil); <-tick.C {
		for _, m := range ms {
			if n := countStatus(m, MemberStatusAlive); n != 3 {
				t.Fatalf("%s sees %d members alive after the rotation", m.LocalMember().ID, n)
			}
		}
	}
	cannotJoin(t, ms, "old", [][]byte{k1})
	cfg := membTestConfig("new")
	cfg.Keys = [][]byte{k2}
	cfg.Join = []string{ms[0].LocalMember().Addr}
	_ = startMember(t, cfg)
	wait.For(t, 5*time.Second, "a sees the member with k2", func() bool { return countStatus(ms[0], MemberStatusAlive) == 4 })
}

func TestMembershipKeyringFileSurvivesRestart(t *testing.T) {
	k1, k2 := gossipKey(t), gossipKey(t)
	a := startKeyedCluster(t, [][]byte{k1}, "a")[0]
	cfgB := membTestConfig("b")
	cfgB.Keys = [][]byte{k1}
	cfgB.KeyringFile = filepath.Join(t.TempDir(), "serf", "keyring")
	cfgB.Join = []string{a.LocalMember().Addr}
	b := startMember(t, cfgB)
	if got, err := readKeyringFile(cfgB.KeyringFile); err != nil || len(got) != 1 || !bytes.Equal(got[0], k1) {
		t.Fatalf("keyring file after the first start: %d keys, %v; want k1", len(got), err)
	}
	if fi, err := os.Stat(cfgB.KeyringFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file mode: %v, %v; want 0600", fi.Mode(), err)
	}
	wait.For(t, 5*time.Second, "a and b see each other", func() bool { return countStatus(a, MemberStatusAlive) == 2 })
	ctx := testCtx(t)
	keyStep(t, "install k2", func() (KeyResponse, error) { return a.InstallKey(ctx, k2) }, 2)
	keyStep(t, "use k2", func() (KeyResponse, error) { return a.UseKey(ctx, k2) }, 2)
	keyStep(t, "remove k1", func() (KeyResponse, error) { return a.RemoveKey(ctx, k1) }, 2)
	if got, err := readKeyringFile(cfgB.KeyringFile); err != nil || len(got) != 1 || !bytes.Equal(got[0], k2) {
		t.Fatalf("keyring file after the rotation: %d keys, %v; want k2", len(got), err)
	}

	// b restarts with its stale configuration (k1): the file wins, so it
	// rejoins a, which now knows only k2. It restarts once a has seen it
	// fail: a gossips its recent key queries to b's address until then, and
	// serf v0.10.2 handles a query that arrives inside serf.Create before
	// it has set its memberlist field (a data race under -race).
	cfgB.BindAddr = b.LocalMember().Addr
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitMemberEvent(t, a, MemberFail, "b", 10*time.Second)
	b2 := startMember(t, cfgB)
	wait.For(t, 10*time.Second, "restarted b sees a alive", func() bool { return countStatus(b2, MemberStatusAlive) == 2 })
	l, err := b2.ListKeys(ctx)
	if b64 := base64.StdEncoding.EncodeToString(k2); err != nil || len(l.Keys) != 1 || l.Keys[b64] != 2 {
		t.Fatalf("ListKeys after the restart: %+v, %v; want only k2, on both members", l, err)
	}

	// A keyring file that cannot be read stops the start with its name.
	bad := membTestConfig("c")
	bad.KeyringFile = filepath.Join(t.TempDir(), "keyring")
	if err := os.WriteFile(bad.KeyringFile, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := NewMembership(context.Background(), bad); err == nil {
		m.Close()
		t.Fatal("started with a corrupt keyring file")
	}
}

func TestMembershipKeyOpsErrors(t *testing.T) {
	m := startMember(t, membTestConfig("plain"))
	ctx := testCtx(t)
	if _, err := m.InstallKey(ctx, gossipKey(t)); !errors.Is(err, ErrEncryptionOff) {
		t.Fatalf("InstallKey without encryption: %v, want ErrEncryptionOff", err)
	}
	if _, err := m.ListKeys(ctx); !errors.Is(err, ErrEncryptionOff) || err.Error() != "cluster: gossip encryption is off: cannot list keys" {
		t.Fatalf("ListKeys without encryption: %v, want ErrEncryptionOff", err)
	}
	if _, err := m.UseKey(ctx, []byte("short")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("UseKey of a 5-byte key: %v, want ErrInvalidConfig", err)
	}
	cfg := membTestConfig("bad")
	cfg.Keys = [][]byte{gossipKey(t), make([]byte, 20)}
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate with a 20-byte key: %v, want ErrInvalidConfig", err)
	}
	keyed := startKeyedCluster(t, [][]byte{gossipKey(t)}, "k")[0]
	if err := keyed.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := keyed.ListKeys(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("ListKeys after Close: %v, want ErrClosed", err)
	}
}
