package client

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// TestReasonDecidesOverWords: with an ErrorInfo the client decides by the
// reason alone; a reason it does not know (from a newer server) is its
// code's sentinel only, not the request's subject; without one (an older
// server) the message's words still count.
func TestReasonDecidesOverWords(t *testing.T) {
	withInfo := func(code codes.Code, msg string, r stratav1.ErrorReason) error {
		st, err := status.New(code, msg).WithDetails(&stratav1.ErrorInfo{Reason: r})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	tests := []struct {
		name    string
		in      error
		subject error
		is      []error
		isNot   []error
		reason  stratav1.ErrorReason
	}{
		{"reason over words", withInfo(codes.NotFound, "unknown topic", stratav1.ErrorReason_ERROR_REASON_UNKNOWN_GROUP),
			ErrUnknownTopic, []error{ErrNotFound, ErrUnknownGroup}, []error{ErrUnknownTopic}, stratav1.ErrorReason_ERROR_REASON_UNKNOWN_GROUP},
		{"unknown reason", withInfo(codes.NotFound, "unknown topic", stratav1.ErrorReason(999)),
			ErrUnknownTopic, []error{ErrNotFound}, []error{ErrUnknownTopic}, stratav1.ErrorReason(999)},
		{"no reason: the words", status.Error(codes.NotFound, "broker: unknown group: g"),
			ErrUnknownTopic, []error{ErrNotFound, ErrUnknownGroup}, []error{ErrUnknownTopic}, 0},
		{"no reason, no words: the subject", status.Error(codes.NotFound, "gone"),
			ErrUnknownTopic, []error{ErrNotFound, ErrUnknownTopic}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError(tt.in, tt.subject)
			var e *Error
			if !errors.As(got, &e) || e.Reason != tt.reason {
				t.Fatalf("%v: reason %v, want %v", got, e.Reason, tt.reason)
			}
			for _, want := range tt.is {
				if !errors.Is(got, want) {
					t.Errorf("%v is not %v", got, want)
				}
			}
			for _, not := range tt.isNot {
				if errors.Is(got, not) {
					t.Errorf("%v is %v", got, not)
				}
			}
		})
	}
	fenced := responseError(int32(codes.FailedPrecondition), "fenced",
		&stratav1.ErrorInfo{Reason: stratav1.ErrorReason_ERROR_REASON_PRODUCER_FENCED, ProducerEpoch: 4})
	if e, ok := fenced.(*Error); !ok || e.fencedBy != 4 || !errors.Is(fenced, ErrProducerFenced) {
		t.Errorf("fenced stream answer %v", fenced)
	}
	old := responseError(int32(codes.FailedPrecondition), "cluster: producer epoch is stale: producer 9 epoch 2 is fenced by epoch 3", nil)
	if e, ok := old.(*Error); !ok || e.fencedBy != 3 || !errors.Is(old, ErrProducerFenced) {
		t.Errorf("an older server's fenced answer %v", old)
	}
}
