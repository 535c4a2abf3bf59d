package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/auth"
)

// PutUser creates a user (update false) or changes its credentials (update
// true) on the metadata leader. Only SCRAM credentials travel and are
// stored, never a password.
func (b *Broker) PutUser(ctx context.Context, u auth.User, update bool) error {
	if err := ValidName("user", u.Name); err != nil {
		return err
	}
	if "user:"+u.Name == auth.Anonymous {
		return fmt.Errorf("%w: %q is the name of unauthenticated callers", ErrInvalidName, u.Name)
	}
	if len(u.Credentials) == 0 {
		return fmt.Errorf("%w: user %q has no credentials", ErrInvalidRequest, u.Name)
	}
	seen := map[auth.Mechanism]bool{}
	for _, c := range u.Credentials {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("%w: user %q: %w", ErrInvalidRequest, u.Name, err)
		}
		if seen[c.Mechanism] {
			return fmt.Errorf("%w: user %q has two %s credentials", ErrInvalidRequest, u.Name, c.Mechanism)
		}
		seen[c.Mechanism] = true
	}
	mode := cluster.UserCreate
	if update {
		mode = cluster.UserUpdate
	}
	return b.applySecurity(ctx, cluster.PutUserCmd(u, mode))
}

// DeleteUser deletes a user on the metadata leader.
func (b *Broker) DeleteUser(ctx context.Context, name string) error {
	return b.applySecurity(ctx, cluster.DeleteUserCmd(name))
}

// Users returns every user (with credentials: callers show only their
// mechanisms), sorted by name.
func (b *Broker) Users() []auth.User {
	var out []auth.User
	for _, name := range b.node.MetaFSM.UserNames() {
		if u, ok := b.node.MetaFSM.User(name); ok {
			out = append(out, u)
		}
	}
	return out
}

// UserCredential returns a user's credential for mechanism m, from this
// node's copy of the metadata.
func (b *Broker) UserCredential(name string, m auth.Mechanism) (auth.Credential, bool) {
	u, ok := b.node.MetaFSM.User(name)
	if !ok {
		return auth.Credential{}, false
	}
	return u.Credential(m)
}

// AddACL adds an access rule on the metadata leader.
func (b *Broker) AddACL(ctx context.Context, a auth.ACL) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return b.applySecurity(ctx, cluster.AddACLCmd(a))
}

// RemoveACL removes an access rule on the metadata leader.
func (b *Broker) RemoveACL(ctx context.Context, a auth.ACL) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return b.applySecurity(ctx, cluster.RemoveACLCmd(a))
}

// ACLs returns the access rules and their version (it changes with every
// user or rule change).
func (b *Broker) ACLs() ([]auth.ACL, uint64) { return b.node.MetaFSM.ACLs() }

// SecurityVersion is the version ACLs would return, read without a lock.
func (b *Broker) SecurityVersion() uint64 { return b.node.MetaFSM.SecurityVersion() }

// applySecurity proposes a user or ACL command on the metadata leader once
// every node understands it: an older node would crash on the command.
func (b *Broker) applySecurity(ctx context.Context, cmd []byte) error {
	if !b.node.Meta.IsLeader() {
		return b.notLeader(b.node.Meta, "metadata")
	}
	if err := b.node.RequireFeature(cluster.FeatureSecurity); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	res, err := b.applyMeta(ctx, cmd)
	if err == nil {
		err, _ = res.(error)
	}
	return mapSecurityErr(err)
}

func mapSecurityErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrUserExists):
		return fmt.Errorf("%w: %w", ErrExists, err)
	case errors.Is(err, cluster.ErrUnknownUser), errors.Is(err, cluster.ErrUnknownACL):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, cluster.ErrInvalidCommand):
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return mapClusterErr(err)
}

// checkPartitionCap refuses a topic that would take the cluster past
// Config.MaxClusterPartitions. It runs on the metadata leader before the
// creation is proposed; two creations at once may pass it together, which
// overshoots by one topic at most each.
func (b *Broker) checkPartitionCap(n int32) error {
	if b.cfg.MaxClusterPartitions <= 0 {
		return nil
	}
	total := 0
	for _, t := range b.node.MetaFSM.Topics() {
		total += len(t.Partitions)
	}
	if total+int(n) > b.cfg.MaxClusterPartitions {
		return fmt.Errorf("%w: the cluster holds %d partitions; %d more would pass its cap of %d",
			ErrLimit, total, n, b.cfg.MaxClusterPartitions)
	}
	return nil
}

// GossipKeyResult is the outcome of a gossip key operation on every member.
type GossipKeyResult struct {
	Members, Failed int
	// Errors holds, per node, the error it answered (or that it did not).
	Errors map[string]string
	// Keys counts, per key (base64), the members holding it (list only);
	// Primary is the primary key most members use.
	Keys    map[string]int32
	Primary string
}

// GossipKey lists, installs, makes primary ("use") or removes a gossip
// encryption key on every member, through serf's key queries.
func (b *Broker) GossipKey(ctx context.Context, action string, key []byte) (GossipKeyResult, error) {
	m := b.node.Membership()
	if m == nil {
		return GossipKeyResult{}, fmt.Errorf("%w: this node runs without gossip", ErrInvalidRequest)
	}
	var r cluster.KeyResponse
	var list cluster.KeyListResponse
	var err error
	switch action {
	case "list":
		list, err = m.ListKeys(ctx)
		r = list.KeyResponse
	case "install":
		r, err = m.InstallKey(ctx, key)
	case "use":
		r, err = m.UseKey(ctx, key)
	case "remove":
		r, err = m.RemoveKey(ctx, key)
	default:
		return GossipKeyResult{}, fmt.Errorf("%w: gossip key action %q is not list, install, use or remove", ErrInvalidRequest, action)
	}
	res := GossipKeyResult{Members: r.Members, Failed: r.Failed + (r.Members - r.Answered), Errors: r.Messages}
	if res.Errors == nil {
		res.Errors = map[string]string{}
	}
	res.Keys = map[string]int32{}
	for k, n := range list.Keys {
		res.Keys[k] = int32(n)
	}
	best := 0
	for k, n := range list.PrimaryKeys {
		if n > best || (n == best && k < res.Primary) {
			res.Primary, best = k, n
		}
	}
	if err != nil {
		return res, fmt.Errorf("%w: gossip key %s: %w", ErrInvalidRequest, action, err)
	}
	return res, nil
}

// IsNode reports whether id is a node of the cluster now.
func (b *Broker) IsNode(id string) bool {
	_, ok := b.node.MetaFSM.NodeInfo(id)
	return ok
}

// TopicNames lists the topics' names.
func (b *Broker) TopicNames() []string {
	ts := b.node.MetaFSM.Topics()
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}
