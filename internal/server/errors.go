package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/broker"
)

// codeOf maps a broker error to its gRPC code.
func codeOf(err error) codes.Code {
	var nl *broker.NotLeaderError
	switch {
	case err == nil:
		return codes.OK
	case errors.As(err, &nl), errors.Is(err, cluster.ErrNotLeader), errors.Is(err, broker.ErrNotReady):
		return codes.Unavailable
	case errors.Is(err, broker.ErrDiskFull):
		// Retryable and served again once space is freed, with no restart;
		// ResourceExhausted would read as the client's fault (too large).
		return codes.Unavailable
	case errors.Is(err, broker.ErrUnknownTopic), errors.Is(err, broker.ErrUnknownPartition),
		errors.Is(err, broker.ErrUnknownGroup), errors.Is(err, broker.ErrUnknownMember),
		errors.Is(err, broker.ErrUnknownProducer), errors.Is(err, broker.ErrUnknownQueueGroup),
		errors.Is(err, broker.ErrUnknownNode), errors.Is(err, broker.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, broker.ErrTopicExists), errors.Is(err, broker.ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, broker.ErrInvalidName), errors.Is(err, broker.ErrInvalidConfig),
		errors.Is(err, broker.ErrInvalidRequest), errors.Is(err, broker.ErrInvalidBatch):
		return codes.InvalidArgument
	case errors.Is(err, broker.ErrBatchTooLarge), errors.Is(err, broker.ErrLimit):
		return codes.ResourceExhausted
	case errors.Is(err, broker.ErrUnsupported):
		return codes.FailedPrecondition
	case errors.Is(err, broker.ErrOffsetOutOfRange):
		return codes.OutOfRange
	case errors.Is(err, broker.ErrStaleGeneration), errors.Is(err, broker.ErrGroupNotEmpty),
		errors.Is(err, broker.ErrQueueConflict),
		errors.Is(err, cluster.ErrOutOfOrderSequence), errors.Is(err, cluster.ErrProducerFenced):
		return codes.FailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Internal
}

// toStatus turns a broker error into a gRPC status error, with a NotLeader
// detail when the request should go to another node.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (from a client or the runtime)
	}
	st := status.New(codeOf(err), err.Error())
	var nl *broker.NotLeaderError
	var se *cluster.SequenceError
	switch {
	case errors.As(err, &nl):
		if d, derr := st.WithDetails(&stratav1.NotLeader{LeaderId: nl.LeaderID, LeaderAddr: nl.LeaderAddr}); derr == nil {
			st = d
		}
	case errors.As(err, &se):
		// A forwarding node (dead letters) needs the expected sequence.
		if d, derr := st.WithDetails(&stratav1.OutOfOrderSequence{ExpectedSequence: se.Expected}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// expectedSequence returns the sequence a partition expects next, for an
// out-of-order produce.
func expectedSequence(err error) int32 {
	var se *cluster.SequenceError
	if errors.As(err, &se) {
		return se.Expected
	}
	return 0
}
