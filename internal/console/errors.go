package console

import (
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/server"
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

// httpStatus maps an error to the HTTP status of the answer: the
// console's own errors here, every domain error through the gRPC code the
// API answers it with (server.Code, one table for both).
func httpStatus(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrConfirm):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, broker.ErrLimit):
		return http.StatusTooManyRequests // ResourceExhausted, but a rate, not a size
	case errors.Is(err, broker.ErrClosed):
		return http.StatusServiceUnavailable
	}
	if code, known := server.Code(err); known {
		return statusOfCode(code)
	}
	return http.StatusInternalServerError
}

// statusOfCode maps a gRPC code to an HTTP status.
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
