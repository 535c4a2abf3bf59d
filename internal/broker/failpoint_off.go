//go:build !failpoints

package broker

// ackBeforeCommit is the ack-before-commit failpoint (failpoint.go):
// always off in a build without the failpoints tag.
const ackBeforeCommit = false

// applyLate belongs to the ack-before-commit failpoint; without the
// failpoints tag nothing calls it.
func applyLate(func() func() (any, error)) {
	panic("broker: a failpoint ran in a build without failpoints")
}
