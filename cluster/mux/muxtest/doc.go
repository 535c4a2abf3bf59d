// Package muxtest makes throwaway mutual-TLS material for tests of the
// cluster port (package mux and its users): a certificate authority made at
// test time, node certificates that carry the URI SAN strata://node/<id>
// as internal/tlsutil's do, and the server and client configs of a node.
// No key material is committed and nothing touches the disk.
//
// It imports nothing of Strata, so package mux's own tests can use it;
// callers put the configs into a mux.ClusterTLS with PeerID.
package muxtest
