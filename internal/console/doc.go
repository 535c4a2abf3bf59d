// Package console is the embedded web console of a node: server-rendered
// pages (html/template, embedded with go:embed) and the JSON API under
// /api/v1 that the pages use, both served on the node's HTTP port.
//
// # What it shows and does
//
// The overview (nodes, raft groups and their leaders, under-replicated and
// offline partitions); topics (create, delete with confirmation, each
// partition's leader, replicas, in-sync replicas, start and end offsets and
// size, the configuration, and the groups and queue groups that read it);
// a message browser (one or all partitions, from the earliest or latest
// records, an offset or a time, filtered by exact key or by a substring of
// key, value or headers, as text, JSON or hex, with a live tail); consumer
// groups (lag in records and seconds, members, offset reset with a dry
// run); queue groups (per-partition counts and the members' leases); dead
// letters with their strata-dlq-* headers decoded, and a redrive; and a
// form that produces a test message.
//
// # Where the answers come from
//
// The console calls the node's broker (internal/broker) in process. What
// only another node can answer correctly goes to that node's gRPC service,
// as the broker's own forwarding (broker.Peers) does: a partition's data
// (fetch, offsets by time, produce, queue leases) from its leader, a
// consumer group's members and offset resets from the group coordinator
// (the metadata leader). Forwarded calls carry the node's own identity
// (its certificate when TLS is on), which the receiving node trusts as it
// trusts every forwarded call; so every permission is checked here first,
// for the console user, with the node's authorizer (server.Security).
//
// Calling the node's own gRPC port with the user's credentials instead
// would not work for users who log in with a client certificate (the
// console cannot present their certificate), would need their password
// kept for the session, and would still reach a node that answers only for
// the partitions it holds.
//
// # Scans are bounded
//
// A browse examines at most Config.MaxScanRecords records and reads about
// Config.MaxScanBytes bytes (whole batches) per request, stops at
// Config.MaxResults matches, and answers what it scanned and, per
// partition, the offset to resume from.
//
// # Safe by design
//
// Message contents are attacker-controlled. Pages escape them with
// html/template (never template.HTML of data) and the script sets them as
// text (textContent); the JSON API answers with Content-Type
// application/json and X-Content-Type-Options: nosniff. Every response has
// a Content-Security-Policy without inline script (default-src 'self') and
// Cache-Control: no-store. Mutations are POST only, refused across origins
// (http.CrossOriginProtection, which reads Sec-Fetch-Site and Origin), and
// the API's mutations take a JSON body only, which a cross-site form cannot
// send. With authentication on (--auth) every page and call needs a login:
// a client certificate, or a user name and password checked against the
// user's SCRAM credential, which opens a session (cookie HttpOnly, Secure,
// SameSite=Strict); the user's permissions are the ACLs of the API.
package console
