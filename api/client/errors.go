package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// This file is the one place where the broker's gRPC status codes become
// the client's errors.

// Errors of the client. Errors from the broker are *Error values that
// match, with errors.Is, the sentinel of their code and, where the
// broker's ErrorReason names one, a more precise one (ErrUnknownTopic is
// also ErrNotFound).
var (
	// ErrClosed is returned by a Client, Producer, Consumer or Admin after
	// Close, and given to the callbacks of records still buffered when a
	// Producer could not deliver them before closing.
	ErrClosed = errors.New("client: closed")
	// ErrInvalidConfig is returned by Validate and the constructors.
	ErrInvalidConfig = errors.New("client: invalid config")
	// ErrNoBrokers is returned by Dial when no broker answered.
	ErrNoBrokers = errors.New("client: no broker reachable")

	// ErrNotFound is the code NotFound: something named does not exist.
	ErrNotFound = errors.New("client: not found")
	// ErrUnknownTopic is returned for a topic that does not exist.
	ErrUnknownTopic = errors.New("client: unknown topic")
	// ErrUnknownPartition is returned for a partition outside its topic.
	ErrUnknownPartition = errors.New("client: unknown partition")
	// ErrUnknownGroup is returned for a group with neither members nor
	// committed offsets.
	ErrUnknownGroup = errors.New("client: unknown group")
	// ErrUnknownMember is returned when the group no longer knows this
	// member (its session expired); the Consumer joins again by itself.
	ErrUnknownMember = errors.New("client: unknown group member")
	// ErrUnknownQueueGroup is returned for a queue group not defined on
	// the topic.
	ErrUnknownQueueGroup = errors.New("client: unknown queue group")
	// ErrUnknownProducer is returned for a producer id the broker never
	// allocated (ProducerConfig.ProducerID).
	ErrUnknownProducer = errors.New("client: unknown producer id")

	// ErrTopicExists is the code AlreadyExists.
	ErrTopicExists = errors.New("client: topic already exists")
	// ErrInvalidArgument is the code InvalidArgument: a malformed request,
	// name or batch.
	ErrInvalidArgument = errors.New("client: invalid argument")
	// ErrTooLarge is the code ResourceExhausted: a batch over the topic's
	// max_batch_bytes.
	ErrTooLarge = errors.New("client: batch too large")
	// ErrOffsetOutOfRange is the code OutOfRange: an offset outside the
	// log.
	ErrOffsetOutOfRange = errors.New("client: offset out of range")

	// ErrFailedPrecondition is the code FailedPrecondition: a state
	// conflict.
	ErrFailedPrecondition = errors.New("client: failed precondition")
	// ErrStaleGeneration is returned for a commit from a generation the
	// group has left behind.
	ErrStaleGeneration = errors.New("client: stale group generation")
	// ErrGroupNotEmpty is returned when an operation needs a group with no
	// live members (resetting offsets, a standalone commit).
	ErrGroupNotEmpty = errors.New("client: group has live members")
	// ErrOutOfOrderSequence is returned for an idempotent batch whose
	// sequence is not the next one the partition expects.
	ErrOutOfOrderSequence = errors.New("client: out of order sequence")
	// ErrProducerFenced is returned for a batch from an older producer
	// epoch.
	ErrProducerFenced = errors.New("client: producer fenced")

	// ErrUnavailable is the code Unavailable: the node cannot serve the
	// request now. The client retries these.
	ErrUnavailable = errors.New("client: unavailable")
	// ErrNotLeader is an Unavailable answer with a NotLeader detail: the
	// node does not lead the partition (or the metadata group).
	ErrNotLeader = errors.New("client: not the leader")
	// ErrDiskFull is an Unavailable answer from a node whose disk is
	// nearly full: nothing was written, and the client retries until space
	// is freed or its retries run out.
	ErrDiskFull = errors.New("client: broker disk full")

	// ErrUnauthenticated is the code Unauthenticated: the broker requires
	// a client certificate or a user and password (or they were wrong).
	ErrUnauthenticated = errors.New("client: unauthenticated")
	// ErrPermissionDenied is the code PermissionDenied: the principal may
	// not do this (an ACL). Nothing was written.
	ErrPermissionDenied = errors.New("client: permission denied")

	// ErrNotAssigned is returned by Seek for a partition the consumer does
	// not hold.
	ErrNotAssigned = errors.New("client: partition not assigned")
	// ErrNoGroup is returned by Commit on a consumer without a group.
	ErrNoGroup = errors.New("client: consumer has no group")
)

// ProducerFencedError ends a Producer for good: another producer started
// with its id (ProducerConfig.ProducerID) and a newer epoch, and the
// brokers refuse this one's batches, so that the two never take each
// other's records for duplicates. Its unsent records and every later one
// fail with it. It matches ErrProducerFenced.
type ProducerFencedError struct {
	ProducerID int64
	Epoch      int16 // this producer's
	NewerEpoch int16 // the newer producer's; -1 when the broker did not say
	Err        error // the broker's answer
}

// Error says which producer was fenced and by what.
func (e *ProducerFencedError) Error() string {
	newer := "a newer epoch"
	if e.NewerEpoch >= 0 {
		newer = fmt.Sprintf("epoch %d", e.NewerEpoch)
	}
	return fmt.Sprintf("client: producer fenced: another producer with id %d started (%s); this one (epoch %d) writes no more: %v",
		e.ProducerID, newer, e.Epoch, e.Err)
}

// Unwrap returns the broker's answer.
func (e *ProducerFencedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrProducerFenced) true.
func (e *ProducerFencedError) Is(target error) bool { return target == ErrProducerFenced }

// Error is a request the broker answered with a status other than OK.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Reason is the broker's ErrorReason: why, more precisely than the
	// code. It is ERROR_REASON_UNSPECIFIED when the broker gave none (an
	// internal error, or a server older than the reasons).
	Reason stratav1.ErrorReason
	// Message is the broker's message.
	Message string
	// LeaderID and LeaderAddr come from a NotLeader detail; LeaderAddr is
	// empty while there is no leader.
	LeaderID   string
	LeaderAddr string
	// NotLeader is true when the status carried a NotLeader detail.
	NotLeader bool

	kinds    []error // the sentinels the error matches
	fencedBy int16   // PRODUCER_FENCED: the newer epoch; -1 when not known
}

// Error returns the code and the broker's message.
func (e *Error) Error() string {
	return fmt.Sprintf("client: %s: %s", e.Code, e.Message)
}

// Is matches the sentinels of the error's code and reason.
func (e *Error) Is(target error) bool {
	for _, k := range e.kinds {
		if k == target {
			return true
		}
	}
	return false
}

// GRPCStatus returns the error as a gRPC status (for status.FromError).
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// codeKinds are the sentinels of the codes, which every *Error of the
// code matches.
var codeKinds = map[codes.Code]error{
	codes.NotFound:           ErrNotFound,
	codes.AlreadyExists:      ErrTopicExists,
	codes.InvalidArgument:    ErrInvalidArgument,
	codes.ResourceExhausted:  ErrTooLarge,
	codes.OutOfRange:         ErrOffsetOutOfRange,
	codes.FailedPrecondition: ErrFailedPrecondition,
	codes.Unavailable:        ErrUnavailable,
	codes.Unauthenticated:    ErrUnauthenticated,
	codes.PermissionDenied:   ErrPermissionDenied,
}

// reasonKinds are the sentinels the broker's reasons stand for, beyond
// their code's. A reason missing here (INVALID_NAME, NOT_READY, ...)
// matches its code's sentinel only; Error.Reason tells it.
var reasonKinds = map[stratav1.ErrorReason]error{
	stratav1.ErrorReason_ERROR_REASON_NOT_LEADER:            ErrNotLeader,
	stratav1.ErrorReason_ERROR_REASON_DISK_FULL:             ErrDiskFull,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC:         ErrUnknownTopic,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_PARTITION:     ErrUnknownPartition,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_GROUP:         ErrUnknownGroup,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_MEMBER:        ErrUnknownMember,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_PRODUCER:      ErrUnknownProducer,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_QUEUE_GROUP:   ErrUnknownQueueGroup,
	stratav1.ErrorReason_ERROR_REASON_TOPIC_EXISTS:          ErrTopicExists,
	stratav1.ErrorReason_ERROR_REASON_BATCH_TOO_LARGE:       ErrTooLarge,
	stratav1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE:   ErrOffsetOutOfRange,
	stratav1.ErrorReason_ERROR_REASON_STALE_GENERATION:      ErrStaleGeneration,
	stratav1.ErrorReason_ERROR_REASON_GROUP_NOT_EMPTY:       ErrGroupNotEmpty,
	stratav1.ErrorReason_ERROR_REASON_OUT_OF_ORDER_SEQUENCE: ErrOutOfOrderSequence,
	stratav1.ErrorReason_ERROR_REASON_PRODUCER_FENCED:       ErrProducerFenced,
	stratav1.ErrorReason_ERROR_REASON_UNAUTHENTICATED:       ErrUnauthenticated,
	stratav1.ErrorReason_ERROR_REASON_PERMISSION_DENIED:     ErrPermissionDenied,
}

// newError builds an *Error the client makes itself: it matches the
// sentinel of its code and kinds.
func newError(code codes.Code, msg string, kinds ...error) *Error {
	e := &Error{Code: code, Message: msg, fencedBy: -1}
	if k, ok := codeKinds[code]; ok {
		e.kinds = append(e.kinds, k)
	}
	e.kinds = append(e.kinds, kinds...)
	return e
}

// brokerError builds the *Error of a broker's answer: its code, message
// and ErrorInfo. Without an ErrorInfo (a server older than the reasons)
// it falls back to legacyError; subject is then the sentinel a NotFound
// means for this request (ErrUnknownTopic for DescribeTopic), nil for
// none.
func brokerError(code codes.Code, msg string, info *stratav1.ErrorInfo, subject error) *Error {
	if info == nil {
		return legacyError(code, msg, subject)
	}
	e := newError(code, msg)
	e.Reason = info.GetReason()
	if k, ok := reasonKinds[e.Reason]; ok {
		e.kinds = append(e.kinds, k)
	}
	if e.Reason == stratav1.ErrorReason_ERROR_REASON_PRODUCER_FENCED && info.GetProducerEpoch() > 0 {
		e.fencedBy = int16(min(info.GetProducerEpoch(), 1<<15-1))
	}
	return e
}

// legacyHints refine a code by words an old broker, one that sends no
// ErrorReason, puts in its messages. Only legacyError reads them.
var legacyHints = map[codes.Code][]struct {
	words string
	kind  error
}{
	codes.NotFound: {
		{"unknown partition", ErrUnknownPartition},
		{"unknown group member", ErrUnknownMember},
		{"unknown producer", ErrUnknownProducer},
		{"unknown queue group", ErrUnknownQueueGroup},
		{"unknown group", ErrUnknownGroup},
		{"unknown topic", ErrUnknownTopic},
	},
	codes.Unavailable: {
		{"disk full", ErrDiskFull},
	},
	codes.FailedPrecondition: {
		{"out of order sequence", ErrOutOfOrderSequence},
		{"epoch is stale", ErrProducerFenced},
		{"fenced", ErrProducerFenced},
		{"stale group generation", ErrStaleGeneration},
		{"live members", ErrGroupNotEmpty},
	},
}

// legacyError builds the *Error of an answer without an ErrorReason, from
// a server that predates them: the code's sentinel, and a more precise one
// when the message has the words for it, else subject for a NotFound.
func legacyError(code codes.Code, msg string, subject error) *Error {
	e := newError(code, msg)
	lower := strings.ToLower(msg)
	matched := false
	for _, h := range legacyHints[code] {
		if strings.Contains(lower, h.words) {
			e.kinds = append(e.kinds, h.kind)
			matched = true
			break
		}
	}
	if !matched && code == codes.NotFound && subject != nil {
		e.kinds = append(e.kinds, subject)
	}
	if errors.Is(e, ErrProducerFenced) {
		e.fencedBy = legacyFencedBy(msg)
	}
	return e
}

// legacyFencedBy returns the epoch an old broker's fenced message names
// ("... fenced by epoch N ..."), or -1.
func legacyFencedBy(msg string) int16 {
	const marker = "fenced by epoch "
	i := strings.Index(msg, marker)
	if i < 0 {
		return -1
	}
	var n int16
	if _, err := fmt.Sscanf(msg[i+len(marker):], "%d", &n); err != nil || n < 0 {
		return -1
	}
	return n
}

// mapError turns an RPC error into the client's: a status becomes an
// *Error (with its reason and NotLeader detail), a context error stays as
// it is.
func mapError(err error, subject error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Canceled:
		return fmt.Errorf("%w: %s", context.Canceled, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message())
	}
	var info *stratav1.ErrorInfo
	var nl *stratav1.NotLeader
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *stratav1.ErrorInfo:
			info = d
		case *stratav1.NotLeader:
			nl = d
		}
	}
	e := brokerError(st.Code(), st.Message(), info, subject)
	if nl != nil {
		e.NotLeader, e.LeaderID, e.LeaderAddr = true, nl.GetLeaderId(), nl.GetLeaderAddr()
		if !errors.Is(e, ErrNotLeader) {
			e.kinds = append(e.kinds, ErrNotLeader)
		}
	}
	return e
}

// responseError is the error of one ProduceStream response, which carries
// a code, a message and an ErrorInfo but no details.
func responseError(code int32, msg string, info *stratav1.ErrorInfo) error {
	if code == 0 {
		return nil
	}
	return brokerError(codes.Code(code), msg, info, ErrUnknownTopic)
}

// retriable reports whether a request that failed with err may succeed if
// sent again: the node was unavailable, was not the leader, or aborted.
func retriable(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code == codes.Unavailable || e.Code == codes.Aborted
}

// leaderHint returns the leader address a NotLeader error names, or "".
func leaderHint(err error) string {
	var e *Error
	if errors.As(err, &e) && e.NotLeader {
		return e.LeaderAddr
	}
	return ""
}
