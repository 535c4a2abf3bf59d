package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/broker"
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
		{"fenced", fmt.Errorf("%w: producer 7 epoch 0", cluster.ErrProducerFenced),
			func(err error) bool { return errors.Is(err, cluster.ErrProducerFenced) }},
		{"sequence", &cluster.SequenceError{ProducerID: 7, Got: 5, Expected: 3},
			func(err error) bool {
				var se *cluster.SequenceError
				return errors.As(err, &se) && se.Expected == 3 && !errors.Is(err, cluster.ErrProducerFenced)
			}},
		{"other precondition", fmt.Errorf("%w: generation 3", broker.ErrStaleGeneration),
			func(err error) bool { return err != nil && !errors.Is(err, cluster.ErrProducerFenced) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromStatus("peer:1", toStatus(tc.err)); !tc.check(got) {
				t.Fatalf("%v came back as %v (%T)", tc.err, got, got)
			}
		})
	}
}
