package broker

import (
	"errors"
	"fmt"

	"github.com/stratalog/strata/cluster"
)

// Errors of the broker. internal/server maps each to a gRPC status code
// and an ErrorReason. The domain errors the broker shares with the layers
// below and above (an unknown topic, a fenced producer, …) are package
// topic's.
var (
	// ErrInvalidName is returned for a malformed topic or group name.
	ErrInvalidName = errors.New("broker: invalid name")
	// ErrInvalidConfig is returned for a topic configuration out of bounds.
	ErrInvalidConfig = errors.New("broker: invalid topic config")
	// ErrInvalidRequest is returned for a malformed request.
	ErrInvalidRequest = errors.New("broker: invalid request")
	// ErrInvalidBatch is returned for a batch that is not a well-formed
	// Kafka v2 record batch (length, magic, CRC, counts).
	ErrInvalidBatch = errors.New("broker: invalid record batch")
	// ErrBatchTooLarge is returned for a batch over the topic's max bytes.
	ErrBatchTooLarge = errors.New("broker: record batch too large")
	// ErrOffsetOutOfRange is returned for an offset outside the log.
	ErrOffsetOutOfRange = errors.New("broker: offset out of range")
	// ErrUnknownGroup is returned for a group that has neither members nor
	// committed offsets.
	ErrUnknownGroup = errors.New("broker: unknown group")
	// ErrUnknownMember is returned for a member the group does not know
	// (it left, or its session expired): the member must join again.
	ErrUnknownMember = errors.New("broker: unknown group member")
	// ErrStaleGeneration is returned for a commit from an old generation.
	ErrStaleGeneration = errors.New("broker: stale group generation")
	// ErrGroupNotEmpty is returned when an operation needs a group with no
	// live members (resetting offsets, a standalone commit).
	ErrGroupNotEmpty = errors.New("broker: group has live members")
	// ErrNotReady is returned while a partition is being created or
	// recovered on this node.
	ErrNotReady = errors.New("broker: partition not ready")
	// ErrUnknownQueueGroup is returned for a queue group not defined on
	// the topic.
	ErrUnknownQueueGroup = errors.New("broker: unknown queue group")
	// ErrQueueConflict is returned when a queue operation raced with a
	// reset, or a reset with dead letters being written: retry.
	ErrQueueConflict = errors.New("broker: queue group changed meanwhile")
	// ErrExists is returned when creating something (a user) that exists.
	ErrExists = errors.New("broker: already exists")
	// ErrNotFound is returned for a user or rule that does not exist.
	ErrNotFound = errors.New("broker: not found")
	// ErrUnsupported is returned for a command some node of the cluster is
	// too old to apply.
	ErrUnsupported = errors.New("broker: not supported by every node")
	// ErrLimit is returned when a request would pass a configured limit
	// (the cluster's partition cap).
	ErrLimit = errors.New("broker: limit reached")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrNotLeader is cluster.ErrNotLeader, the one sentinel every
	// not-leader error matches: a *NotLeaderError, or a raft group's own
	// *cluster.NotLeaderError when leadership moved during a request. It is
	// named here so that the layers above compare with it without importing
	// cluster.
	ErrNotLeader = cluster.ErrNotLeader
)

// NotLeaderError says which node leads the partition or group asked for.
// It matches ErrNotLeader.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string // gRPC address; empty when unknown
	What       string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return fmt.Sprintf("broker: no leader for %s", e.What)
	}
	return fmt.Sprintf("broker: not the leader for %s; leader is %s at %s", e.What, e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
