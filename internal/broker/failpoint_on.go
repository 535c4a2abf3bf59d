//go:build failpoints

package broker

import (
	"os"
	"sync"
	"time"
)

// ackBeforeCommit is the ack-before-commit failpoint (failpoint.go), on
// when STRATA_FAILPOINTS names it. This file is compiled only with
// -tags failpoints.
var ackBeforeCommit = failpointsFromEnv()["ack-before-commit"]

// failpointsFromEnv reads STRATA_FAILPOINTS; a name it does not know stops
// the test binary at start-up rather than running without the fault.
func failpointsFromEnv() map[string]bool {
	on, err := parseFailpoints(os.Getenv(failpointsEnv))
	if err != nil {
		panic(err)
	}
	return on
}

// ackBeforeCommitDelay is how long an acknowledged batch waits before it
// is handed to raft: long enough that a kill right after the client got
// its acknowledgements finds batches raft never saw, whatever the load of
// the machine, so the tests that must fail do so on every run.
const ackBeforeCommitDelay = time.Second

// lateApplies keeps the hand-overs of acknowledged batches in the order of
// their acknowledgements (a producer's sequence numbers must reach raft in
// order), one process-wide chain: each waits for the one before.
var lateApplies struct {
	mu   sync.Mutex
	prev chan struct{}
}

// applyLate hands a batch to raft (apply) ackBeforeCommitDelay from now,
// after the batches acknowledged before it, and waits for its commit in
// the background: the acknowledgement was already sent.
func applyLate(apply func() func() (any, error)) {
	lateApplies.mu.Lock()
	prev, next := lateApplies.prev, make(chan struct{})
	lateApplies.prev = next
	lateApplies.mu.Unlock()
	due := time.Now().Add(ackBeforeCommitDelay)
	go func() {
		if prev != nil {
			<-prev
		}
		time.Sleep(time.Until(due))
		wait := apply()
		close(next)
		_, _ = wait()
	}()
}
