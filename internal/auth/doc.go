// Package auth holds Strata's authentication and authorization building
// blocks: SCRAM credentials and conversations (RFC 5802, RFC 7677), ACLs and
// the Authorizer that evaluates them, and the audit log. It is a leaf package: it imports
// nothing from the rest of Strata, so cluster (which stores credentials and
// ACLs in the metadata raft group) and broker and server (which enforce them)
// can all import it.
//
// # Principals
//
// A principal is a string: "user:<name>" for a client authenticated by SCRAM
// or a client certificate, "node:<id>" for another Strata node, and
// Anonymous ("user:ANONYMOUS") for a client that did not authenticate. In an
// ACL, "user:*" stands for every user principal (never for a node).
//
// # Credentials
//
// A Credential is what is stored (in the raft log and snapshots) for a user
// and a mechanism: the salt, the iteration count, StoredKey and ServerKey.
// A User is a name and its credentials, as the metadata group stores it
// (package cluster replicates it; this package defines it, so that the
// layers that enforce security need not import cluster).
// The password is never stored, and no exported function of this package
// writes it anywhere. A stolen Credential lets an attacker impersonate the
// server to a client but not log in as the user (RFC 5802 section 9), and
// lets them mount an offline dictionary attack slowed by the iteration
// count.
//
// Passwords are not SASLprep-normalized (RFC 4013): ASCII passwords pass
// unchanged (SASLprep leaves them unchanged too, apart from control
// characters, which are rejected), and non-ASCII passwords are used as their
// UTF-8 bytes without NFKC normalization or the mapping of non-ASCII spaces.
// Two visually equal passwords in different Unicode normal forms therefore do
// not match. This is what Kafka's own SCRAM implementation does, so Kafka
// clients interoperate; a client that does apply SASLprep to a non-ASCII
// password will fail to log in.
//
// # SCRAM conversations
//
// ServerConversation runs the server side of one SCRAM exchange (the Kafka
// SASL/SCRAM listener feeds it the SaslAuthenticate payloads);
// ClientConversation runs the client side. Only the gs2 header "n" is
// accepted (no channel binding: the "-PLUS" mechanisms are not offered), with
// an optional authorization identity that must equal the user. An unknown
// user gets a server-first message with a salt derived from the user name and
// a per-process secret, so it looks like a real one, and fails at the proof
// with the same ErrAuthFailed as a wrong password.
//
// # Authorization
//
// An ACL allows or denies one operation (or OpAll) on a resource (a topic,
// group, queue or the cluster) named literally ("*" meaning every name) or by
// prefix, to one principal. The Authorizer evaluates a rule set: super-users
// are always allowed; otherwise any matching deny wins, then any matching
// allow, and anything else is denied. As in Kafka, an allow of any operation
// on a resource also allows describe on it; a deny of describe implies
// nothing else, and a deny of another operation does not deny describe.
// Decisions are cached per (principal, operation, resource, name) until the
// next Update.
//
// # Audit
//
// Audit writes one JSON object per line for failed logins, denied requests
// and administrative changes. Lines are written whole under a mutex, so
// concurrent events never interleave.
package auth
