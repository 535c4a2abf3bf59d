package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// A forwarded answer must come back as the error it stood for: a
// dead-letter writer tells a fenced epoch from a sequence gap and from a
// partition led elsewhere.
func TestFromStatusKeepsForwardedErrors(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"fenced", fmt.Errorf("%w: producer 7 epoch 0", topic.ErrProducerFenced),
			func(err error) bool { return errors.Is(err, topic.ErrProducerFenced) }},
		{"sequence", &topic.SequenceError{ProducerID: 7, Got: 5, Expected: 3},
			func(err error) bool {
				var se *topic.SequenceError
				return errors.As(err, &se) && se.Expected == 3 && !errors.Is(err, topic.ErrProducerFenced)
			}},
		{"other precondition", fmt.Errorf("%w: generation 3", broker.ErrStaleGeneration),
			func(err error) bool { return err != nil && !errors.Is(err, topic.ErrProducerFenced) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromStatus("peer:1", toStatus(tc.err)); !tc.check(got) {
				t.Fatalf("%v came back as %v (%T)", tc.err, got, got)
			}
		})
	}
}

// A node older than the ErrorReason (in a cluster being upgraded) sends
// statuses without an ErrorInfo: they are read by their code, as before.
func TestFromStatusOfAnOlderNode(t *testing.T) {
	cases := []struct {
		st   error
		want error
	}{
		{status.Error(codes.FailedPrecondition, "cluster: producer epoch is stale: producer 7 epoch 0 is fenced by epoch 1"), topic.ErrProducerFenced},
		{status.Error(codes.NotFound, `broker: unknown topic: "x"`), topic.ErrUnknownTopic},
		{status.Error(codes.AlreadyExists, "broker: topic already exists"), topic.ErrTopicExists},
		{status.Error(codes.Unavailable, "broker: partition not ready"), broker.ErrNotReady},
		{status.Error(codes.InvalidArgument, "broker: invalid record batch"), broker.ErrInvalidRequest},
		{status.Error(codes.DeadlineExceeded, "slow"), context.DeadlineExceeded},
	}
	for _, tc := range cases {
		if got := fromStatus("peer:1", tc.st); !errors.Is(got, tc.want) {
			t.Errorf("%v came back as %v, want %v", tc.st, got, tc.want)
		}
	}
	got := fromStatus("peer:1", status.Error(codes.FailedPrecondition, "broker: stale group generation"))
	if got == nil || errors.Is(got, topic.ErrProducerFenced) {
		t.Errorf("an older node's other precondition came back as %v", got)
	}
}
