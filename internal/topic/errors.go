package topic

import (
	"errors"
	"fmt"
)

// Errors of the domain, each defined once for every layer. The messages
// keep the words older Go clients look for ("unknown topic", "epoch is
// stale", ...), which matched the text of a status without an
// ErrorReason.
var (
	// ErrTopicExists is returned when creating a topic whose name is
	// taken.
	ErrTopicExists = errors.New("topic: topic already exists")
	// ErrUnknownTopic is returned for a topic that does not exist.
	ErrUnknownTopic = errors.New("topic: unknown topic")
	// ErrUnknownPartition is returned for a partition outside its topic
	// (not for a partition this node holds no replica of, which is
	// cluster.ErrUnknownPartition and means "not ready here").
	ErrUnknownPartition = errors.New("topic: unknown partition")
	// ErrUnknownProducer is returned when restarting a producer id that was
	// never allocated, or that a queue group's dead letters use.
	ErrUnknownProducer = errors.New("topic: unknown producer id")
	// ErrUnknownNode is returned for a node the cluster's metadata does not
	// hold.
	ErrUnknownNode = errors.New("topic: unknown node")
	// ErrOutOfOrderSequence is returned for an idempotent batch whose base
	// sequence is not the next one expected; see SequenceError.
	ErrOutOfOrderSequence = errors.New("topic: out of order sequence")
	// ErrProducerFenced is returned for a batch from an older producer
	// epoch; see FencedError.
	ErrProducerFenced = errors.New("topic: producer epoch is stale")
)

// SequenceError reports the sequence a partition expects next from a
// producer. It matches ErrOutOfOrderSequence with errors.Is.
type SequenceError struct {
	ProducerID int64
	Got        int32
	Expected   int32
}

// Error names the producer, the sequence it sent and the one expected.
func (e *SequenceError) Error() string {
	return fmt.Sprintf("topic: out of order sequence from producer %d: got %d, expected %d",
		e.ProducerID, e.Got, e.Expected)
}

// Is makes errors.Is(err, ErrOutOfOrderSequence) true.
func (e *SequenceError) Is(target error) bool { return target == ErrOutOfOrderSequence }

// FencedError is the error for a batch of producer ProducerID at Epoch,
// refused because a newer instance of the producer started with epoch
// Current. It matches ErrProducerFenced with errors.Is.
type FencedError struct {
	ProducerID int64
	Epoch      int16
	// Current is the epoch the producer id is at; -1 when not known.
	Current int16
}

// Error names the producer, its epoch and the epoch that fenced it.
func (e *FencedError) Error() string {
	if e.Current < 0 {
		return fmt.Sprintf("%v: producer %d epoch %d is fenced: another producer with this id started",
			ErrProducerFenced, e.ProducerID, e.Epoch)
	}
	return fmt.Sprintf("%v: producer %d epoch %d is fenced by epoch %d: another producer with this id started",
		ErrProducerFenced, e.ProducerID, e.Epoch, e.Current)
}

// Is makes errors.Is(err, ErrProducerFenced) true.
func (e *FencedError) Is(target error) bool { return target == ErrProducerFenced }
