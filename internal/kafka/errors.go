package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// errorCode maps a broker error to the Kafka error code clients act on:
// NOT_LEADER_OR_FOLLOWER makes them refresh metadata, the retriable ones
// make them retry.
func errorCode(err error) int16 {
	var nl *broker.NotLeaderError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &nl), errors.Is(err, broker.ErrNotLeader):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, topic.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, topic.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, broker.ErrNotReady):
		return kerr.LeaderNotAvailable.Code
	case errors.Is(err, broker.ErrDiskFull):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, broker.ErrBatchTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, broker.ErrInvalidBatch):
		return kerr.CorruptMessage.Code
	case errors.Is(err, broker.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, topic.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, topic.ErrProducerFenced):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, topic.ErrUnknownProducer):
		return kerr.UnknownProducerID.Code
	case errors.Is(err, topic.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, broker.ErrInvalidName):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, broker.ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, broker.ErrLimit):
		return kerr.PolicyViolation.Code
	case errors.Is(err, broker.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	}
	return kerr.UnknownServerError.Code
}
