package queue

import "errors"

var (
	// ErrNotReady is returned for a command on a group that has no state
	// on the partition yet: an init command creates it.
	ErrNotReady = errors.New("queue: group not initialised on partition")
	// ErrReset is returned for a command issued before the group was
	// reset: its generation is not the group's.
	ErrReset = errors.New("queue: group was reset")
	// ErrBusy is returned by a reset while dead letters are being written.
	ErrBusy = errors.New("queue: group busy")
	// ErrMalformed is returned by DecodeCmd for bytes that are not a
	// command.
	ErrMalformed = errors.New("queue: malformed command")
	// ErrCorruptSnapshot is returned by Restore for a snapshot that no
	// State can have produced.
	ErrCorruptSnapshot = errors.New("queue: corrupt snapshot")
)
