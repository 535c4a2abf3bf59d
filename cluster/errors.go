package cluster

import "errors"

// Sentinel errors of package cluster, the one list of them. Compare with
// errors.Is. The state machines' errors (from ErrUnknownPartition on) are
// returned as values by Apply, the same on every replica; the domain
// errors they share with the layers above (an unknown topic, a topic that
// exists, the idempotent producer's sequence errors) are package topic's.
var (
	// ErrClosed is returned by operations on a closed Group or Node.
	ErrClosed = errors.New("cluster: closed")

	// ErrNotLeader is returned when a write reaches a node that is not (or no
	// longer) the group's leader. The error is a *NotLeaderError carrying the
	// leader this node knows of, if any. When it wraps raft.ErrLeadershipLost
	// the entry may still be committed by the next leader.
	ErrNotLeader = errors.New("cluster: not the leader")

	// ErrTimeout is returned when a raft operation does not finish before its
	// deadline. The operation may still take effect.
	ErrTimeout = errors.New("cluster: timed out")

	// ErrInvalidConfig is returned by Validate for a configuration that
	// cannot work.
	ErrInvalidConfig = errors.New("cluster: invalid config")

	// Membership.
	// ErrJoinFailed is returned when no address given to join answered.
	ErrJoinFailed = errors.New("cluster: join failed")
	// ErrMemberAlive is returned by RemoveFailed for a member that is alive.
	ErrMemberAlive = errors.New("cluster: member is alive")
	// ErrEncryptionOff is returned by the keyring operations of a
	// Membership that runs without gossip encryption.
	ErrEncryptionOff = errors.New("cluster: gossip encryption is off")
	// ErrNotAdmitted is returned by an admission check (VerifyMemberTLS)
	// for a member whose certificate names another node than its gossip
	// name.
	ErrNotAdmitted = errors.New("cluster: member not admitted")

	// State machines.
	// ErrUnknownPartition is returned for a partition no data group of
	// this node holds (yet): the broker answers it as not ready. A
	// partition outside its topic is topic.ErrUnknownPartition.
	ErrUnknownPartition = errors.New("cluster: unknown partition")
	// ErrPartitionFailed is returned by a partition whose storage failed
	// under a committed write; it serves nothing until the node restarts and
	// replays raft's log into it.
	ErrPartitionFailed = errors.New("cluster: partition storage failed")
	// ErrUserExists is returned when creating a user whose name is taken.
	ErrUserExists = errors.New("cluster: user already exists")
	// ErrUnknownUser is returned for a user the metadata does not hold.
	ErrUnknownUser = errors.New("cluster: unknown user")
	// ErrUnknownACL is returned when removing a rule that does not exist.
	ErrUnknownACL = errors.New("cluster: no such ACL")
	// ErrInvalidCommand is returned for a metadata command missing a part.
	ErrInvalidCommand = errors.New("cluster: invalid command")
	// ErrFeatureUnsupported is returned when a node of the cluster is too
	// old for a command (Node.RequireFeature).
	ErrFeatureUnsupported = errors.New("cluster: a node does not support this")
)
