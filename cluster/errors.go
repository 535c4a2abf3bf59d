package cluster

import (
	"errors"
	"fmt"
)

// Sentinel errors of package cluster, the one list of them. Compare with
// errors.Is. The state machines' errors (from ErrTopicExists on) are
// returned as values by Apply, the same on every replica.
var (
	// ErrClosed is returned by operations on a closed Group, Mux or layer.
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

	// ErrBadMuxHeader is logged when a connection to the mux opens with
	// anything but a well-formed header in time.
	ErrBadMuxHeader = errors.New("cluster: bad mux header")

	// ErrUnknownGroup is logged when a connection to the mux names a group
	// that has no layer on this node.
	ErrUnknownGroup = errors.New("cluster: unknown raft group")

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
	// ErrTopicExists is returned when creating a topic whose name is taken.
	ErrTopicExists = errors.New("cluster: topic already exists")
	// ErrUnknownTopic is returned for a topic the metadata does not hold.
	ErrUnknownTopic = errors.New("cluster: unknown topic")
	// ErrUnknownPartition is returned for a partition no data group holds.
	ErrUnknownPartition = errors.New("cluster: unknown partition")
	// ErrPartitionFailed is returned by a partition whose storage failed
	// under a committed write; it serves nothing until the node restarts and
	// replays raft's log into it.
	ErrPartitionFailed = errors.New("cluster: partition storage failed")
	// ErrOutOfOrderSequence is returned for an idempotent batch whose base
	// sequence is not the next one expected; see SequenceError.
	ErrOutOfOrderSequence = errors.New("cluster: out of order sequence")
	// ErrUnknownNode is returned for a node the metadata does not hold.
	ErrUnknownNode = errors.New("cluster: unknown node")
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
	// ErrProducerFenced is returned for a batch from an older producer epoch.
	ErrProducerFenced = errors.New("cluster: producer epoch is stale")
	// ErrUnknownProducer is returned when restarting a producer id that was
	// never allocated, or that a queue group's dead letters use.
	ErrUnknownProducer = errors.New("cluster: unknown producer id")
)

// SequenceError reports the sequence a partition expects next from a
// producer. It matches ErrOutOfOrderSequence with errors.Is.
type SequenceError struct {
	ProducerID int64
	Got        int32
	Expected   int32
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("cluster: out of order sequence from producer %d: got %d, expected %d",
		e.ProducerID, e.Got, e.Expected)
}

// Is makes errors.Is(err, ErrOutOfOrderSequence) true.
func (e *SequenceError) Is(target error) bool { return target == ErrOutOfOrderSequence }
