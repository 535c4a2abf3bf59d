package server

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/internal/broker"
)

// TestDiskFullIsRetryable: a produce refused for a full disk is
// Unavailable, which clients retry, and keeps the broker's message.
func TestDiskFullIsRetryable(t *testing.T) {
	err := fmt.Errorf("%w: 3.1 MiB free in /data, need 64 MiB", broker.ErrDiskFull)
	st, _ := status.FromError(toStatus(err))
	if st.Code() != codes.Unavailable || st.Message() != err.Error() {
		t.Fatalf("disk full maps to %v %q, want Unavailable %q", st.Code(), st.Message(), err)
	}
}
