package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Audit event names, the "event" field of each line.
const (
	EventLoginFailed = "login_failed"
	EventDenied      = "denied"
	EventAdmin       = "admin"
)

// Audit writes security events as JSON lines: one object per line, each with
// "time" (RFC 3339 with nanoseconds, UTC) and "event". Each line is written
// with one Write call under a mutex, so concurrent events never interleave.
// A nil *Audit discards everything. No method takes a password.
type Audit struct {
	mu  sync.Mutex
	w   io.Writer
	err error            // first write error
	now func() time.Time // test hook
	buf bytes.Buffer     // reused line buffer; guarded by mu
}

// NewAudit returns an Audit writing to w; a nil w discards.
func NewAudit(w io.Writer) *Audit {
	if w == nil {
		w = io.Discard
	}
	return &Audit{w: w, now: time.Now}
}

// OpenAuditFile opens (creating it with mode 0600) the file at path for
// appending and returns an Audit writing to it and the Closer of the file.
// Close is idempotent.
func OpenAuditFile(path string) (*Audit, io.Closer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: open audit log: %w", err)
	}
	return NewAudit(f), &onceCloser{c: f}, nil
}

// onceCloser makes Close idempotent.
type onceCloser struct {
	once sync.Once
	c    io.Closer
	err  error
}

// Close closes the underlying file the first time and returns that result
// every time.
func (o *onceCloser) Close() error {
	o.once.Do(func() { o.err = o.c.Close() })
	return o.err
}

// loginFailedEvent is the line of LoginFailed.
type loginFailedEvent struct {
	Time      string `json:"time"`
	Event     string `json:"event"`
	Principal string `json:"principal"`
	Mechanism string `json:"mechanism"`
	Remote    string `json:"remote"`
	Reason    string `json:"reason"`
}

// deniedEvent is the line of Denied.
type deniedEvent struct {
	Time      string `json:"time"`
	Event     string `json:"event"`
	Principal string `json:"principal"`
	Operation string `json:"operation"`
	Resource  string `json:"resource"`
	Name      string `json:"name"`
	Method    string `json:"method"`
	Remote    string `json:"remote"`
}

// adminEvent is the line of AdminChange.
type adminEvent struct {
	Time      string `json:"time"`
	Event     string `json:"event"`
	Principal string `json:"principal"`
	Action    string `json:"action"`
	Target    string `json:"target"`
	Remote    string `json:"remote"`
	Result    string `json:"result"` // "ok" or "error"
	Error     string `json:"error,omitempty"`
}

// LoginFailed records a failed authentication: principal is the name the
// client claimed (it may not exist), mechanism e.g. "SCRAM-SHA-256" or
// "mtls", remote the client address, reason a short cause.
func (a *Audit) LoginFailed(principal, mechanism, remote, reason string) {
	if a == nil {
		return
	}
	a.write(loginFailedEvent{a.stamp(), EventLoginFailed, principal, mechanism, remote, reason})
}

// Denied records a request the Authorizer refused: the operation, the
// resource type and name, the RPC or Kafka API (method) and the client
// address.
func (a *Audit) Denied(principal, op, resource, name, method, remote string) {
	if a == nil {
		return
	}
	a.write(deniedEvent{a.stamp(), EventDenied, principal, op, resource, name, method, remote})
}

// AdminChange records an administrative change (action e.g. "create_user",
// "add_acl"; target what it changed) and its outcome: err nil is "ok".
func (a *Audit) AdminChange(principal, action, target, remote string, err error) {
	if a == nil {
		return
	}
	ev := adminEvent{a.stamp(), EventAdmin, principal, action, target, remote, "ok", ""}
	if err != nil {
		ev.Result, ev.Error = "error", err.Error()
	}
	a.write(ev)
}

// Err returns the first error writing a line, if any: audit lines after it
// may be missing.
func (a *Audit) Err() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// stamp returns the current time for a line.
func (a *Audit) stamp() string { return a.now().UTC().Format(time.RFC3339Nano) }

// write encodes ev as one line and writes it with one Write call.
func (a *Audit) write(ev any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf.Reset()
	enc := json.NewEncoder(&a.buf) // Encode ends the line with '\n'
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil { // the events are plain strings: cannot happen
		panic(fmt.Sprintf("auth: audit event: %v", err))
	}
	if _, err := a.w.Write(a.buf.Bytes()); err != nil && a.err == nil {
		a.err = fmt.Errorf("auth: write audit log: %w", err)
	}
}
