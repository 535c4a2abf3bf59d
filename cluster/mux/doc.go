// Package mux is the transport of the cluster port: all raft groups of a
// node (package cluster) share one TCP listener, and a Mux hands each
// connection to the layer (a raft.StreamLayer) of the group it names.
//
// # Wire format
//
// A connection opens with
//
//	byte 0       magic 'S' (0x53)
//	byte 1       n, the length of the group name (1 to 255)
//	bytes 2..n+1 the group name, [A-Za-z0-9._-]
//
// after which it carries raft's NetworkTransport stream unchanged. The mux
// sends nothing back. A connection whose header is malformed, names a group
// with no layer on this node, or does not arrive within 5 s is closed and
// logged; the dialling raft sees the connection fail and retries.
//
// With a ClusterTLS (NewTLSMux) the connection is mutual TLS from its
// first byte and the header travels inside it; the TLS handshake and the
// header share the 5 s deadline, and a peer whose certificate names no
// node is closed (mux_tls.go). Package mux holds no certificates: the
// agent builds the tls.Configs and the function that reads a node id from
// a verified certificate.
//
// # Ownership and shutdown
//
// A layer owns every connection it accepted or dialled and closes them when
// it closes; raft's NetworkTransport closes its layer when the group closes.
// Close the groups before the mux: Mux.Close also closes the layers, but a
// group whose layer is gone keeps retrying until it is closed.
//
// # Tests
//
// WrapDial routes the connections a mux dials through a test network
// (cluster.FaultNet); package muxtest makes certificates for tests.
//
// # Locks
//
// Mux.mu before muxLayer.mu. Neither is held across a network call or a
// conn.Close.
package mux
