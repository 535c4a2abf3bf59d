package cluster

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stratalog/strata/internal/auth"
)

// User command modes.
const (
	UserCreate = "create" // refused when the user exists
	UserUpdate = "update" // refused when it does not (a password change)
)

// FeatureSecurity is the feature a node advertises when it understands the
// user and ACL metadata commands. A node that does not would panic on them
// (an unknown command), so the broker proposes them only when every node
// of the cluster advertises it (Node.RequireFeature).
const FeatureSecurity = "security-v1"

// features is what this version of the node understands, advertised in
// its serf tags (tagFeatures).
var features = []string{FeatureSecurity}

// PutUserCmd creates (mode UserCreate) or changes (UserUpdate) a user.
func PutUserCmd(u auth.User, mode string) []byte {
	return mustJSON(metaCmd{Op: opPutUser, User: &u, Mode: mode})
}

// DeleteUserCmd deletes a user.
func DeleteUserCmd(name string) []byte { return mustJSON(metaCmd{Op: opDeleteUser, Name: name}) }

// AddACLCmd adds an access rule; adding one that exists is a no-op.
func AddACLCmd(a auth.ACL) []byte { return mustJSON(metaCmd{Op: opAddACL, ACL: &a}) }

// RemoveACLCmd removes an access rule.
func RemoveACLCmd(a auth.ACL) []byte { return mustJSON(metaCmd{Op: opRemoveACL, ACL: &a}) }

// applySecurityLocked applies the user and ACL commands. Every change bumps
// SecurityVersion, which tells authorizers to reload. Caller must hold f.mu.
func (f *MetaFSM) applySecurityLocked(c *metaCmd) any {
	s := f.state
	switch c.Op {
	case opPutUser:
		if c.User == nil || c.User.Name == "" {
			return fmt.Errorf("%w: a user needs a name", ErrInvalidCommand)
		}
		_, exists := s.Users[c.User.Name]
		switch {
		case c.Mode == UserCreate && exists:
			return fmt.Errorf("%w: %q", ErrUserExists, c.User.Name)
		case c.Mode == UserUpdate && !exists:
			return fmt.Errorf("%w: %q", ErrUnknownUser, c.User.Name)
		}
		if s.Users == nil {
			s.Users = map[string]*auth.User{}
		}
		u := auth.User{Name: c.User.Name, Credentials: slices.Clone(c.User.Credentials)}
		s.Users[u.Name] = &u
	case opDeleteUser:
		if _, ok := s.Users[c.Name]; !ok {
			return fmt.Errorf("%w: %q", ErrUnknownUser, c.Name)
		}
		delete(s.Users, c.Name)
	case opAddACL:
		if c.ACL == nil {
			return fmt.Errorf("%w: no rule", ErrInvalidCommand)
		}
		if slices.Contains(s.ACLs, *c.ACL) {
			return nil
		}
		s.ACLs = append(slices.Clip(s.ACLs), *c.ACL)
	case opRemoveACL:
		if c.ACL == nil {
			return fmt.Errorf("%w: no rule", ErrInvalidCommand)
		}
		i := slices.Index(s.ACLs, *c.ACL)
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrUnknownACL, c.ACL)
		}
		s.ACLs = slices.Delete(slices.Clone(s.ACLs), i, i+1)
	}
	s.SecurityVersion++
	f.secVersion.Store(s.SecurityVersion)
	return nil
}

// User returns a copy of the named user.
func (f *MetaFSM) User(name string) (auth.User, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	u, ok := f.state.Users[name]
	if !ok {
		return auth.User{}, false
	}
	return auth.User{Name: u.Name, Credentials: slices.Clone(u.Credentials)}, true
}

// UserNames returns the names of every user, sorted.
func (f *MetaFSM) UserNames() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Sorted(maps.Keys(f.state.Users))
}

// ACLs returns a copy of the access rules and the security version they
// belong to.
func (f *MetaFSM) ACLs() ([]auth.ACL, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.state.ACLs), f.state.SecurityVersion
}

// SecurityVersion counts the user and ACL changes applied; it is read
// without a lock on every authorized request to see whether rules changed.
func (f *MetaFSM) SecurityVersion() uint64 { return f.secVersion.Load() }

// RequireFeature returns nil when every node the metadata knows
// registered with feature, or advertises it in gossip now, and otherwise an
// error naming the first that does not (or whose version is unknown: an
// older node that gossip does not see). A command that older nodes cannot
// apply must pass it first: they would crash on it. Once such commands
// are in the metadata, members without the feature are not registered
// (featuresFit), so an older node cannot join later and crash either.
func (n *Node) RequireFeature(feature string) error {
	tags := map[string]map[string]string{}
	for _, m := range n.Members() {
		tags[m.ID] = m.Tags
	}
	for _, info := range n.MetaFSM.NodeInfos() {
		if info.ID == n.cfg.ID || slices.Contains(strings.Split(info.Features, ","), feature) {
			continue
		}
		t, seen := tags[info.ID]
		if !seen {
			return fmt.Errorf("%w: node %s is not reachable by gossip, so whether it understands %s is unknown", ErrFeatureUnsupported, info.ID, feature)
		}
		if !slices.Contains(strings.Split(t[tagFeatures], ","), feature) {
			return fmt.Errorf("%w: node %s runs an older version without %s; upgrade every node first", ErrFeatureUnsupported, info.ID, feature)
		}
	}
	return nil
}

// baseTags are the serf tags every node publishes: its addresses and its
// features.
func (n *Node) baseTags() map[string]string {
	f := features
	if n.cfg.features != nil {
		f = n.cfg.features
	}
	tags := map[string]string{tagGRPC: n.cfg.GRPCAddr, tagRaft: n.ClusterAddr(), tagFeatures: strings.Join(f, ",")}
	if n.cfg.KafkaAddr != "" {
		tags[tagKafka] = n.cfg.KafkaAddr
	}
	return tags
}

// featuresFit reports whether a member may be registered: once users or
// ACLs are in the metadata, a member without FeatureSecurity would crash
// replaying them, so it stays out (with a warning at most once a minute).
func (n *Node) featuresFit(id, memberFeatures string, now time.Time) bool {
	if n.MetaFSM.SecurityVersion() == 0 || slices.Contains(strings.Split(memberFeatures, ","), FeatureSecurity) {
		return true
	}
	if now.Sub(n.rec.featureWarned[id]) >= time.Minute {
		n.rec.featureWarned[id] = now
		n.log.Warn("member not registered: its version lacks a feature the cluster's metadata uses; upgrade it",
			"id", id, "feature", FeatureSecurity)
	}
	return false
}
