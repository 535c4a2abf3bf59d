package console

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// Errors of the console.
var (
	// ErrInvalidConfig is returned by Config.Validate.
	ErrInvalidConfig = errors.New("console: invalid config")
	// ErrBadRequest is returned for a malformed request or parameter.
	ErrBadRequest = errors.New("console: bad request")
	// ErrForbidden is returned when the caller may not do what it asks.
	ErrForbidden = errors.New("console: forbidden")
	// ErrUnauthenticated is returned when a login is needed.
	ErrUnauthenticated = errors.New("console: login required")
	// ErrConfirm is returned for a destructive action sent without its
	// confirmation.
	ErrConfirm = errors.New("console: confirmation required")
	// ErrNotFound is returned for a path the console does not serve.
	ErrNotFound = errors.New("console: not found")
	// ErrRemote is returned when another node's answer cannot be used.
	ErrRemote = errors.New("console: forwarded call failed")
)

// httpStatus maps an error to the HTTP status of the answer.
func httpStatus(err error) int {
	var nl *broker.NotLeaderError
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrConfirm),
		errors.Is(err, broker.ErrInvalidName), errors.Is(err, broker.ErrInvalidConfig),
		errors.Is(err, broker.ErrInvalidRequest), errors.Is(err, broker.ErrInvalidBatch),
		errors.Is(err, broker.ErrOffsetOutOfRange):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound), errors.Is(err, topic.ErrUnknownTopic), errors.Is(err, topic.ErrUnknownPartition),
		errors.Is(err, broker.ErrUnknownGroup), errors.Is(err, broker.ErrUnknownQueueGroup),
		errors.Is(err, broker.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, topic.ErrTopicExists), errors.Is(err, broker.ErrExists),
		errors.Is(err, broker.ErrGroupNotEmpty), errors.Is(err, broker.ErrQueueConflict):
		return http.StatusConflict
	case errors.Is(err, broker.ErrBatchTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, broker.ErrLimit):
		return http.StatusTooManyRequests
	case errors.As(err, &nl), errors.Is(err, broker.ErrNotReady), errors.Is(err, broker.ErrDiskFull),
		errors.Is(err, broker.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return statusOfCode(se.GRPCStatus().Code())
	}
	return http.StatusInternalServerError
}

// statusOfCode maps another node's gRPC answer that names no domain error
// (server.FromStatus kept it as it came) to an HTTP status.
func statusOfCode(c codes.Code) int {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusRequestEntityTooLarge
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}
