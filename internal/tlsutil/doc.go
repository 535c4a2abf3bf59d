// Package tlsutil holds Strata's TLS building blocks: node identity bound
// to certificates, certificate and key files that are reloaded without a
// restart, the tls.Config of each port, and certificate generation for
// `strata cert` and for tests.
//
// # Identity
//
// A node certificate carries the URI SAN strata://node/<id> and the
// extended key usages ServerAuth and ClientAuth; a client certificate
// carries CN=<name>, ClientAuth only, and no node URI. Principal names the
// holder of a verified certificate: "node:<id>" or "user:<CN>".
//
// # Files and reloading
//
// A Store holds the material of a Files (CA bundle, certificate, key). On
// the handshake path (GetConfigForClient, GetClientCertificate,
// VerifyConnection) it checks, at most once per reload interval
// (ReloadCheckInterval, default 1s), whether any file changed, and if so
// parses all of them again. The files are small, so a check reads them
// and compares their bytes with the last ones loaded: modification times
// have the granularity of a kernel tick, and a new certificate or key
// often has the size of the old one. No goroutine is involved, so a Store
// needs no Close. A reload that fails
// (a half-written file, a key that does not match its certificate, a CA
// file without certificates) keeps the previous good material and logs one
// warning per change of the files; a broken pair is never served. Writing
// the files with a rename (as WriteFiles does) avoids the transient failure
// of a reader seeing a half-written file; replacing the certificate and key
// one after the other may log one warning (key does not match) until the
// second file is in place.
//
// # Configurations
//
//   - ServerConfig: the client-facing ports (gRPC, HTTP). Client
//     certificates are verified, as clientAuth asks, against the CA pool
//     current at each handshake, so a rotated CA file applies to new
//     handshakes. Session tickets are off when client certificates are
//     verified, so that a resumed session cannot skip verification against
//     a rotated pool.
//   - ClientConfig: a client of those ports; the server's chain and host
//     name are verified by crypto/tls against the CA pool current when the
//     config is made (make one per dial to follow a CA rotation).
//   - NodeServerConfig, NodeClientConfig: the cluster port. Both sides
//     must present a node certificate signed by the CA. Nodes dial
//     advertised addresses, so host names are not verified: the client
//     verifies the server's chain itself (ServerAuth usage, current pool)
//     and checks that it is a node certificate. Because crypto/tls then
//     leaves ConnectionState.VerifiedChains empty on the dialing side,
//     PeerNodeID answers only on the accepting side; the dialing side uses
//     Store.VerifyNode.
//
// All configurations require TLS 1.2 or later.
//
// # Generation
//
// CreateCA, CreateNode and CreateClient make ECDSA P-256 keys and
// SHA-256 signatures with random 128-bit serials, valid from one hour ago
// (clock skew). Keys are PKCS #8 PEM ("PRIVATE KEY"). WriteFiles writes a
// pair atomically (temporary file and rename), the key with mode 0600.
// The subpackage tlstest makes a CA and node or client files in a test's
// temporary directory.
package tlsutil
