// Package wait is the tests' one way to wait for a condition that has no
// event to wait on: poll it with a short, growing interval until it holds
// or a deadline passes, then fail the test with what was awaited and, for
// [NoError], the last error.
//
// Tests wait on notifications where the code offers one (a channel, a
// long-poll); this package is for state seen from outside (a leader
// elected on another node, a record replicated to a follower, a process
// answering on its port). A bare sleep that hopes the state has settled
// is never used instead.
package wait
