package mux

import "errors"

// Sentinel errors of package mux. Compare with errors.Is.
var (
	// ErrClosed is returned by operations on a closed Mux or layer (with
	// net.ErrClosed, see errLayerClosed).
	ErrClosed = errors.New("mux: closed")
	// ErrInvalidConfig is returned for an advertise address, a group name
	// or a ClusterTLS that cannot work.
	ErrInvalidConfig = errors.New("mux: invalid config")
	// ErrBadHeader is logged when a connection to the mux opens with
	// anything but a well-formed header in time.
	ErrBadHeader = errors.New("mux: bad mux header")
	// ErrUnknownGroup is logged when a connection to the mux names a group
	// that has no layer on this node.
	ErrUnknownGroup = errors.New("mux: unknown raft group")
)
