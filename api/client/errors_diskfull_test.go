package client

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestDiskFullRetried: the broker's disk-full answer is retried and names
// its cause.
func TestDiskFullRetried(t *testing.T) {
	err := mapError(status.Error(codes.Unavailable, "broker: disk full: 3.1 MiB free in /data, need 64 MiB"), nil)
	if !retriable(err) || !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrDiskFull) {
		t.Fatalf("%v: retriable %v, ErrUnavailable %v, ErrDiskFull %v; want all true", err,
			retriable(err), errors.Is(err, ErrUnavailable), errors.Is(err, ErrDiskFull))
	}
	if errors.Is(responseError(int32(codes.Unavailable), "leader moved", nil), ErrDiskFull) {
		t.Fatal("an Unavailable without the words is ErrDiskFull")
	}
	if !errors.Is(responseError(int32(codes.Unavailable), "broker: disk full: 0 MiB free", nil), ErrDiskFull) {
		t.Fatal("a stream response saying disk full is not ErrDiskFull")
	}
}
