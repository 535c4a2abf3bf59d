package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
	eventuallyErr(t, 10*time.Second, "b registered", func() error {
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
	eventuallyErr(t, 10*time.Second, "the feature seen", func() error { return a.RequireFeature(FeatureSecurity) })
	if _, err := a.Meta.Apply(ctx, AddACLCmd(auth.ACL{Principal: "user:x", Permission: auth.PermissionAllow,
		Operation: auth.OpProduce, Resource: auth.ResourceTopic, Name: "t", Pattern: auth.PatternLiteral})); err != nil {
		t.Fatal(err)
	}
	eventuallyErr(t, 10*time.Second, "b applied the rule", func() error {
		if acls, _ := b.MetaFSM.ACLs(); len(acls) != 1 {
			return errors.New("not yet")
		}
		return nil
	})
}

// openPlainNode opens (without Start) a node without TLS.
func openPlainNode(t *testing.T, id string, join []string, tune func(*NodeConfig)) *Node {
	t.Helper()
	cfg := testNodeConfig(id, t.TempDir(), join)
	if tune != nil {
		tune(&cfg)
	}
	n, err := OpenNode(cfg, nil)
	if err != nil {
		t.Fatalf("open node %s: %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}
