package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// This file is the one place where errors meet the wire: errorTable gives
// every domain error its gRPC code and ErrorReason, toStatus builds the
// status from it, and fromStatus (peers.go) reads a status another node
// sent back into the same domain error with the same table.

// Errors the server refuses a request with by itself (authentication,
// authorization, throttling), before the broker sees it.
var (
	// errUnauthenticated: no credentials, wrong ones, or a password
	// without TLS.
	errUnauthenticated = errors.New("server: unauthenticated")
	// errPermissionDenied: the principal may not do this.
	errPermissionDenied = errors.New("server: permission denied")
	// errBusyNode: the node protects itself (too many password checks).
	errBusyNode = errors.New("server: busy")
)

// errorKind is one row of errorTable.
type errorKind struct {
	err    error
	code   codes.Code
	reason stratav1.ErrorReason
}

// errorTable maps the domain errors to the wire. The first row an error
// matches (errors.Is) decides, so an error that wraps two sentinels gets
// the earlier one's code; the order is that of the codes' precedence.
// Each reason appears once.
var errorTable = []errorKind{
	{broker.ErrNotLeader, codes.Unavailable, stratav1.ErrorReason_ERROR_REASON_NOT_LEADER},
	{broker.ErrNotReady, codes.Unavailable, stratav1.ErrorReason_ERROR_REASON_NOT_READY},
	// Retryable and served again once space is freed, with no restart;
	// ResourceExhausted would read as the client's fault (too large).
	{broker.ErrDiskFull, codes.Unavailable, stratav1.ErrorReason_ERROR_REASON_DISK_FULL},
	{errBusyNode, codes.Unavailable, stratav1.ErrorReason_ERROR_REASON_BUSY},

	{topic.ErrUnknownTopic, codes.NotFound, stratav1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC},
	{topic.ErrUnknownPartition, codes.NotFound, stratav1.ErrorReason_ERROR_REASON_UNKNOWN_PARTITION},
	{broker.ErrUnknownGroup, codes.NotFound, stratav1.ErrorReason_ERROR_REASON_UNKNOWN_GROUP},
	{broker.ErrUnknownMember, codes.NotFound, stratav1.ErrorReason_ERROR_REASON_UNKNOWN_MEMBER},
	{topic.ErrUnknownProducer, codes.NotFound, stratav1.ErrorReason_ERROR_REASON_UNKNOWN_PRODUCER},
	{broker.ErrUnknownQueueGroup, codes.NotFound, stratav1.ErrorReason_ERROR_REASON_UNKNOWN_QUEUE_GROUP},
	{topic.ErrUnknownNode, codes.NotFound, stratav1.ErrorReason_ERROR_REASON_UNKNOWN_NODE},
	{broker.ErrNotFound, codes.NotFound, stratav1.ErrorReason_ERROR_REASON_NOT_FOUND},

	{topic.ErrTopicExists, codes.AlreadyExists, stratav1.ErrorReason_ERROR_REASON_TOPIC_EXISTS},
	{broker.ErrExists, codes.AlreadyExists, stratav1.ErrorReason_ERROR_REASON_ALREADY_EXISTS},

	{broker.ErrInvalidName, codes.InvalidArgument, stratav1.ErrorReason_ERROR_REASON_INVALID_NAME},
	{broker.ErrInvalidConfig, codes.InvalidArgument, stratav1.ErrorReason_ERROR_REASON_INVALID_CONFIG},
	{broker.ErrInvalidRequest, codes.InvalidArgument, stratav1.ErrorReason_ERROR_REASON_INVALID_REQUEST},
	{broker.ErrInvalidBatch, codes.InvalidArgument, stratav1.ErrorReason_ERROR_REASON_INVALID_BATCH},

	{broker.ErrBatchTooLarge, codes.ResourceExhausted, stratav1.ErrorReason_ERROR_REASON_BATCH_TOO_LARGE},
	{broker.ErrLimit, codes.ResourceExhausted, stratav1.ErrorReason_ERROR_REASON_LIMIT},

	{broker.ErrUnsupported, codes.FailedPrecondition, stratav1.ErrorReason_ERROR_REASON_UNSUPPORTED},
	{broker.ErrOffsetOutOfRange, codes.OutOfRange, stratav1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE},
	{broker.ErrStaleGeneration, codes.FailedPrecondition, stratav1.ErrorReason_ERROR_REASON_STALE_GENERATION},
	{broker.ErrGroupNotEmpty, codes.FailedPrecondition, stratav1.ErrorReason_ERROR_REASON_GROUP_NOT_EMPTY},
	{broker.ErrQueueConflict, codes.FailedPrecondition, stratav1.ErrorReason_ERROR_REASON_QUEUE_CONFLICT},
	{topic.ErrOutOfOrderSequence, codes.FailedPrecondition, stratav1.ErrorReason_ERROR_REASON_OUT_OF_ORDER_SEQUENCE},
	{topic.ErrProducerFenced, codes.FailedPrecondition, stratav1.ErrorReason_ERROR_REASON_PRODUCER_FENCED},

	{errUnauthenticated, codes.Unauthenticated, stratav1.ErrorReason_ERROR_REASON_UNAUTHENTICATED},
	{errPermissionDenied, codes.PermissionDenied, stratav1.ErrorReason_ERROR_REASON_PERMISSION_DENIED},
}

// kindOf returns the row of errorTable err matches: a context error and
// an error no row matches get the code of their own and no reason.
func kindOf(err error) errorKind {
	for _, k := range errorTable {
		if errors.Is(err, k.err) {
			return k
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errorKind{err: context.DeadlineExceeded, code: codes.DeadlineExceeded}
	case errors.Is(err, context.Canceled):
		return errorKind{err: context.Canceled, code: codes.Canceled}
	}
	return errorKind{code: codes.Internal}
}

// reasonKinds indexes errorTable by reason, for fromStatus.
var reasonKinds = func() map[stratav1.ErrorReason]errorKind {
	m := make(map[stratav1.ErrorReason]errorKind, len(errorTable))
	for _, k := range errorTable {
		if _, dup := m[k.reason]; dup {
			panic(fmt.Sprintf("server: reason %v twice in the error table", k.reason))
		}
		m[k.reason] = k
	}
	return m
}()

// codeOf maps a broker error to its gRPC code.
// Code returns the gRPC code err is answered with, from the same table as
// the service's answers; for an error no row names, the code of a status
// it wraps (another node's answer that names no domain error). known is
// false when neither says anything (an internal error).
func Code(err error) (code codes.Code, known bool) {
	if k := kindOf(err); k.code != codes.Internal {
		return k.code, true
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Code(), true
	}
	return codes.Internal, false
}

func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	return kindOf(err).code
}

// errorInfo is the ErrorInfo detail of a broker error.
func errorInfo(err error) *stratav1.ErrorInfo {
	info := &stratav1.ErrorInfo{Reason: kindOf(err).reason}
	var fe *topic.FencedError
	if errors.As(err, &fe) && fe.Current > 0 {
		info.ProducerEpoch = int32(fe.Current)
	}
	return info
}

// toStatus turns a broker error into a gRPC status error with an
// ErrorInfo detail, and a NotLeader detail when the request should go to
// another node (or an OutOfOrderSequence one with the sequence expected).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (from a client or the runtime)
	}
	details := []protoadapt.MessageV1{errorInfo(err)}
	var nl *broker.NotLeaderError
	var se *topic.SequenceError
	switch {
	case errors.As(err, &nl):
		details = append(details, &stratav1.NotLeader{LeaderId: nl.LeaderID, LeaderAddr: nl.LeaderAddr})
	case errors.As(err, &se):
		// A forwarding node (dead letters) needs the expected sequence.
		details = append(details, &stratav1.OutOfOrderSequence{ExpectedSequence: se.Expected})
	}
	st := status.New(codeOf(err), err.Error())
	if d, derr := st.WithDetails(details...); derr == nil {
		st = d
	}
	return st.Err()
}

// setProduceError fills the error fields of one ProduceStream response,
// which carries no status details.
func setProduceError(resp *stratav1.ProduceResponse, err error) {
	resp.ErrorCode = int32(codeOf(err))
	resp.ErrorMessage = err.Error()
	resp.ErrorInfo = errorInfo(err)
	var se *topic.SequenceError
	if errors.As(err, &se) {
		resp.ExpectedSequence = se.Expected
	}
}

// refusal is an error the server refuses a request with: its message is
// the client's to read as it is, its kind (a sentinel of errorTable)
// gives the code and reason.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

// refuse returns the status of a refusal of kind with the message format
// makes.
func refuse(kind error, format string, args ...any) error {
	return toStatus(&refusal{kind: kind, msg: fmt.Sprintf(format, args...)})
}
