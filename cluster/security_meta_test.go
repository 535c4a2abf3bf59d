package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/auth"
)

// TestRequireFeatureOlderNode: with a node that does not advertise the
// security feature (an older version, which would panic on the user and
// ACL commands), RequireFeature refuses and names it; once it advertises
// the feature, the command is allowed and every node applies it.
func TestRequireFeatureOlderNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := openPlainNode(t, "a", nil, nil)
	startNode(t, a)
	b := openPlainNode(t, "b", []string{a.GossipAddr()}, func(c *NodeConfig) { c.features = []string{} })
	startNode(t, b)
	wait.NoError(t, 10*time.Second, "b registered", func() error {
		if _, ok := a.MetaFSM.NodeInfo("b"); !ok {
			return errors.New("not yet")
		}
		return nil
	})
	err := a.RequireFeature(FeatureSecurity)
	if !errors.Is(err, ErrFeatureUnsupported) || !strings.Contains(err.Error(), "node b") {
		t.Fatalf("RequireFeature with an older b: %v, want ErrFeatureUnsupported naming b", err)
	}
	// b "upgrades": it advertises the feature.
	tags := b.baseTags()
	tags[tagFeatures] = FeatureSecurity
	if err := b.members.SetTags(tags); err != nil {
		t.Fatal(err)
	}
	wait.NoError(t, 10*time.Second, "the feature seen", func() error { return a.RequireFeature(FeatureSecurity) })
	if _, err := a.Meta.Apply(ctx, AddACLCmd(auth.ACL{Principal: "user:x", Permission: auth.PermissionAllow,
		Operation: auth.OpProduce, Resource: auth.ResourceTopic, Name: "t", Pattern: auth.PatternLiteral})); err != nil {
		t.Fatal(err)
	}
	wait.NoError(t, 10*time.Second, "b applied the rule", func() error {
		if acls, _ := b.MetaFSM.ACLs(); len(acls) != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	// Now that the metadata holds a rule, an older node may not join: it
	// would crash replaying it.
	openPlainNode(t, "c", []string{a.GossipAddr()}, func(c *NodeConfig) { c.features = []string{} })
	wait.NoError(t, 10*time.Second, "a sees c in gossip", func() error {
		for _, m := range a.Members() {
			if m.ID == "c" && m.Status == MemberStatusAlive {
				return nil
			}
		}
		return errors.New("not yet")
	})
	tick := time.NewTicker(a.Config().ReconcileInterval)
	defer tick.Stop()
	for range 20 {
		if _, ok := a.MetaFSM.NodeInfo("c"); ok {
			t.Fatal("an older node was registered after a security command")
		}
		<-tick.C
	}
}

// openPlainNode opens (without Start) a node without TLS.
func openPlainNode(t *testing.T, id string, join []string, tune func(*NodeConfig)) *Node {
	t.Helper()
	cfg := testNodeConfig(id, t.TempDir(), join)
	if tune != nil {
		tune(&cfg)
	}
	n, err := OpenNode(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("open node %s: %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestMetaFSMSecurityCommands: users and ACLs through the metadata FSM,
// their deterministic errors, an ACL added twice kept once (and no new
// version), and all of it through a snapshot and a restore.
func TestMetaFSMSecurityCommands(t *testing.T) {
	f := NewMetaFSM(nil)
	idx := uint64(0)
	apply := func(cmd []byte) any {
		idx++
		return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: cmd})
	}
	cred, err := auth.NewCredential(auth.ScramSHA256, "pw", auth.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	u := auth.User{Name: "alice", Credentials: []auth.Credential{cred}}
	if res := apply(PutUserCmd(u, UserCreate)); res != nil {
		t.Fatalf("create: %v", res)
	}
	if res, _ := apply(PutUserCmd(u, UserCreate)).(error); !errors.Is(res, ErrUserExists) {
		t.Fatalf("create twice: %v", res)
	}
	if res, _ := apply(PutUserCmd(auth.User{Name: "bob", Credentials: u.Credentials}, UserUpdate)).(error); !errors.Is(res, ErrUnknownUser) {
		t.Fatalf("update of a missing user: %v", res)
	}
	rule := auth.ACL{Principal: "user:alice", Permission: auth.PermissionAllow, Operation: auth.OpProduce,
		Resource: auth.ResourceTopic, Name: "orders", Pattern: auth.PatternLiteral}
	apply(AddACLCmd(rule))
	v := f.SecurityVersion()
	apply(AddACLCmd(rule))
	if acls, v2 := f.ACLs(); len(acls) != 1 || v2 != v {
		t.Fatalf("an ACL added twice: %d rules, version %d -> %d", len(acls), v, v2)
	}
	if res, _ := apply(RemoveACLCmd(auth.ACL{Principal: "user:bob", Permission: auth.PermissionAllow, Operation: auth.OpProduce,
		Resource: auth.ResourceTopic, Name: "x", Pattern: auth.PatternLiteral})).(error); !errors.Is(res, ErrUnknownACL) {
		t.Fatalf("remove of a missing rule: %v", res)
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := NewMetaFSM(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	got, ok := g.User("alice")
	if !ok || len(got.Credentials) != 1 || !got.Credentials[0].Verify("pw") {
		t.Fatalf("restored user: %+v %v", got, ok)
	}
	if acls, v2 := g.ACLs(); len(acls) != 1 || acls[0] != rule || v2 != f.SecurityVersion() || g.SecurityVersion() != v2 {
		t.Fatalf("restored rules %v at version %d (published %d), want 1 at %d", acls, v2, g.SecurityVersion(), f.SecurityVersion())
	}
	if res := apply(DeleteUserCmd("alice")); res != nil {
		t.Fatalf("delete: %v", res)
	}
	if _, ok := f.User("alice"); ok {
		t.Fatal("alice still there after delete")
	}
}
