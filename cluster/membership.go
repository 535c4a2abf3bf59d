package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

const (
	// serfEventBuffer is the capacity of the channel serf sends into. Serf
	// sends while holding its member lock, so a full channel would stall
	// gossip, and with a snapshot serf drops what does not fit (its
	// snapshotter forwards without blocking); the pump drains it at once
	// into an unbounded queue.
	serfEventBuffer = 1024
	// memberEventBuffer is the capacity of the channel Events returns.
	memberEventBuffer = 256
	// memberQueueWarn is the queue length at which a slow consumer is first
	// logged; the threshold doubles after each warning.
	memberQueueWarn = 1024
	// deadNodeReclaim is how long a dead member's name stays bound to its
	// address before a member at another address may take it.
	deadNodeReclaim = 10 * time.Second
	// maxJoinBackoff caps the wait between join attempts.
	maxJoinBackoff = 30 * time.Second
)

// MemberEventKind says what happened to a member.
type MemberEventKind int

// Kinds of member events, one per serf member event type.
const (
	// MemberJoin: the member is alive (new, or back after a failure).
	MemberJoin MemberEventKind = iota + 1
	// MemberLeave: the member left gracefully, or an operator removed it.
	MemberLeave
	// MemberFail: the member stopped answering. It is still a member.
	MemberFail
	// MemberUpdate: the member's tags changed.
	MemberUpdate
	// MemberReap: a failed or left member was forgotten after
	// ReconnectTimeout or TombstoneTimeout.
	MemberReap
)

// String returns "join", "leave", "fail", "update" or "reap".
func (k MemberEventKind) String() string {
	switch k {
	case MemberJoin:
		return "join"
	case MemberLeave:
		return "leave"
	case MemberFail:
		return "fail"
	case MemberUpdate:
		return "update"
	case MemberReap:
		return "reap"
	default:
		return "MemberEventKind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Member statuses, as Member.Status reports them.
const (
	MemberStatusAlive   = "alive"
	MemberStatusLeaving = "leaving"
	MemberStatusLeft    = "left"
	MemberStatusFailed  = "failed"
)

// Member is one node as gossip knows it.
type Member struct {
	// ID is the node's id: serf node name and raft ServerID.
	ID string
	// Addr is the member's gossip address, host:port.
	Addr string
	// Tags are what the member published (e.g. "grpc_addr"). A copy.
	Tags map[string]string
	// Status is one of the MemberStatus constants ("none" if serf knows the
	// name only).
	Status string
}

// MemberEvent is a change in the membership seen by this node.
type MemberEvent struct {
	Kind   MemberEventKind
	Member Member
}

// MembershipConfig configures serf membership of one node. The timings
// default to memberlist.DefaultLANConfig and serf.DefaultConfig (values
// below as of memberlist v0.5.2 and serf v0.10.2).
type MembershipConfig struct {
	// NodeID is the serf node name, the same as the raft ServerID. Required.
	NodeID string
	// BindAddr is the ip:port gossip listens on, TCP and UDP. Port 0 picks
	// a free port (LocalMember().Addr tells which). Default "0.0.0.0:7946".
	BindAddr string
	// AdvertiseAddr is the ip:port other members reach us at; "" lets
	// memberlist derive it from BindAddr (a private IP when bound to all
	// interfaces). Default "".
	AdvertiseAddr string
	// Tags are published to every member: what others need to reach us,
	// e.g. "grpc_addr", "cluster_addr". Encoded, at most 512 bytes.
	Tags map[string]string
	// Join lists gossip addresses (host:port) of existing members; empty
	// starts alone. NewMembership fails if none of them answers.
	Join []string
	// JoinAttempts is how many times NewMembership tries Join before it
	// gives up. Default 3.
	JoinAttempts int
	// JoinBackoff is the wait after the first failed join attempt, doubled
	// after each further one (capped at 30 s). Default 1 s.
	JoinBackoff time.Duration
	// SnapshotPath is a file where serf records the members it knows, so a
	// restarted node rejoins them by itself (also after a Leave); "" keeps
	// no snapshot. Default "".
	SnapshotPath string
	// Logger receives serf's and memberlist's logs; nil discards them.
	Logger *slog.Logger
	// Keys turns gossip encryption on: every key is 16, 24 or 32 bytes
	// (AES-128, -192, -256); the first is the primary, which encrypts, and
	// all of them decrypt. Members without a matching key cannot join.
	// Default none: gossip in plaintext. See membership_keyring.go.
	Keys [][]byte
	// KeyringFile is where serf keeps the keyring (e.g.
	// <data-dir>/serf.keyring), so that keys installed or rotated at run
	// time survive a restart. When the file exists it wins over Keys; when
	// it does not and Keys is set, Keys is written to it. "" keeps the
	// keyring in memory only. Default "".
	KeyringFile string

	// ProbeInterval is how often a random member is probed. Default 1 s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for an ack before indirect
	// probes are tried. Less than ProbeInterval. Default 500 ms.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect member has to refute before
	// it is declared failed: SuspicionMult x max(1, log10(members)) x
	// ProbeInterval. Default 4.
	SuspicionMult int
	// GossipInterval is how often queued gossip is sent. Default 200 ms.
	GossipInterval time.Duration
	// PushPullInterval is how often full state is exchanged with a random
	// member over TCP. Default 30 s.
	PushPullInterval time.Duration
	// TCPTimeout bounds a TCP connection to a member, including each join
	// attempt to an address. Default 10 s.
	TCPTimeout time.Duration
	// BroadcastTimeout bounds each of the two broadcasts of Leave.
	// Default 5 s.
	BroadcastTimeout time.Duration
	// LeavePropagateDelay is how long Leave stays up after its broadcast so
	// that the news spreads. Default 1 s.
	LeavePropagateDelay time.Duration
	// ReconnectInterval is how often a failed member is tried again.
	// Default 30 s.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is kept (and tried)
	// before it is reaped (MemberReap). Default 24 h.
	ReconnectTimeout time.Duration
	// TombstoneTimeout is how long a left member is remembered before it
	// is reaped. Default 24 h.
	TombstoneTimeout time.Duration
	// ReapInterval is how often failed and left members are checked against
	// their timeouts. Default 15 s.
	ReapInterval time.Duration
}

// DefaultMembershipConfig returns LAN defaults. NodeID must still be set.
func DefaultMembershipConfig() MembershipConfig {
	ml := memberlist.DefaultLANConfig()
	return MembershipConfig{
		BindAddr:            "0.0.0.0:7946",
		JoinAttempts:        3,
		JoinBackoff:         time.Second,
		ProbeInterval:       ml.ProbeInterval,
		ProbeTimeout:        ml.ProbeTimeout,
		SuspicionMult:       ml.SuspicionMult,
		GossipInterval:      ml.GossipInterval,
		PushPullInterval:    ml.PushPullInterval,
		TCPTimeout:          ml.TCPTimeout,
		BroadcastTimeout:    5 * time.Second,
		LeavePropagateDelay: time.Second,
		ReconnectInterval:   30 * time.Second,
		ReconnectTimeout:    24 * time.Hour,
		TombstoneTimeout:    24 * time.Hour,
		ReapInterval:        15 * time.Second,
	}
}

// Validate reports whether c can start membership; the error wraps
// ErrInvalidConfig.
func (c MembershipConfig) Validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("NodeID is required"))
	}
	if _, _, err := splitIPPort(c.BindAddr, true); err != nil {
		errs = append(errs, fmt.Errorf("BindAddr: %w", err))
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitIPPort(c.AdvertiseAddr, false); err != nil {
			errs = append(errs, fmt.Errorf("AdvertiseAddr: %w", err))
		}
	}
	if c.JoinAttempts < 1 {
		errs = append(errs, errors.New("JoinAttempts must be at least 1"))
	}
	if c.SuspicionMult < 1 {
		errs = append(errs, errors.New("SuspicionMult must be at least 1"))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"JoinBackoff", c.JoinBackoff}, {"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval}, {"PushPullInterval", c.PushPullInterval}, {"TCPTimeout", c.TCPTimeout},
		{"BroadcastTimeout", c.BroadcastTimeout}, {"ReconnectInterval", c.ReconnectInterval},
		{"ReconnectTimeout", c.ReconnectTimeout}, {"TombstoneTimeout", c.TombstoneTimeout}, {"ReapInterval", c.ReapInterval},
	} {
		if d.d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", d.name))
		}
	}
	for i, k := range c.Keys {
		if err := validateGossipKey(k); err != nil {
			errs = append(errs, fmt.Errorf("Keys[%d]: %w", i, err))
		}
	}
	if c.LeavePropagateDelay < 0 {
		errs = append(errs, errors.New("LeavePropagateDelay must not be negative"))
	}
	if c.ProbeTimeout > 0 && c.ProbeTimeout >= c.ProbeInterval {
		errs = append(errs, errors.New("ProbeTimeout must be less than ProbeInterval"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: membership %q: %w", ErrInvalidConfig, c.NodeID, err)
	}
	return nil
}

// splitIPPort parses ip:port. The host must be an IP literal because
// memberlist binds and advertises IPs, not names; an empty host is allowed
// (all interfaces) when allowEmptyHost.
func splitIPPort(addr string, allowEmptyHost bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	if host == "" && allowEmptyHost {
		return "0.0.0.0", int(port), nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", 0, fmt.Errorf("host %q is not an IP address", host)
	}
	return host, int(port), nil
}

// serfConfig builds serf's configuration. Validate must have passed; ring
// is the keyring (nil: no encryption).
func (c MembershipConfig) serfConfig(events chan<- serf.Event, logger *log.Logger, ring *memberlist.Keyring) *serf.Config {
	ml := memberlist.DefaultLANConfig()
	ml.Name = c.NodeID
	ml.BindAddr, ml.BindPort, _ = splitIPPort(c.BindAddr, true)
	if c.AdvertiseAddr != "" {
		ml.AdvertiseAddr, ml.AdvertisePort, _ = splitIPPort(c.AdvertiseAddr, false)
	}
	ml.ProbeInterval = c.ProbeInterval
	ml.ProbeTimeout = c.ProbeTimeout
	ml.SuspicionMult = c.SuspicionMult
	ml.GossipInterval = c.GossipInterval
	ml.PushPullInterval = c.PushPullInterval
	ml.TCPTimeout = c.TCPTimeout
	// A node that comes back at another address (a container restarted
	// with a new IP) may take over its dead predecessor's name after this.
	ml.DeadNodeReclaimTime = deadNodeReclaim
	ml.LogOutput = nil // serf refuses both LogOutput and Logger
	ml.Logger = logger
	if ring != nil {
		// Refuse plaintext both ways, whatever memberlist's default.
		ml.Keyring = ring
		ml.GossipVerifyIncoming, ml.GossipVerifyOutgoing = true, true
	}

	sc := serf.DefaultConfig() // LogOutput, NodeName and the rest overridden below
	sc.NodeName = c.NodeID
	sc.Tags = maps.Clone(c.Tags)
	sc.EventCh = events
	sc.BroadcastTimeout = c.BroadcastTimeout
	sc.LeavePropagateDelay = c.LeavePropagateDelay
	sc.ReapInterval = c.ReapInterval
	sc.ReconnectInterval = c.ReconnectInterval
	sc.ReconnectTimeout = c.ReconnectTimeout
	sc.TombstoneTimeout = c.TombstoneTimeout
	sc.MemberlistConfig = ml
	sc.LogOutput = nil // serf refuses both LogOutput and Logger
	sc.Logger = logger
	sc.SnapshotPath = c.SnapshotPath
	if ring != nil {
		sc.KeyringFile = c.KeyringFile // serf rewrites it after each key query
	}
	// A node restarted after a Leave must be able to come back.
	sc.RejoinAfterLeave = true
	return sc
}

// Membership is this node's view of the cluster through serf gossip: who
// is alive and how to reach them. It never changes raft configurations
// itself; only the metadata leader turns its events into raft changes and
// replica placement, and a member that merely failed stays a member until
// an operator (RemoveFailed) or ReconnectTimeout (MemberReap) removes it.
//
// Serf sends its events into a buffered channel while holding its own
// locks, so that channel must never fill up: a goroutine (the pump) does
// nothing but move each event into an unbounded in-memory queue, from which
// Events is fed. No event is dropped while the Membership is open; a
// consumer that falls behind makes the queue grow, and its length is
// logged at Warn each time it doubles past 1024.
type Membership struct {
	cfg  MembershipConfig
	log  *slog.Logger
	serf *serf.Serf
	ring *memberlist.Keyring // nil without encryption; serf's queries change it

	serfCh chan serf.Event  // serf -> pump; buffered
	events chan MemberEvent // pump -> consumer; closed when the pump ends
	stop   chan struct{}    // closed by Close to end the pump
	wg     sync.WaitGroup   // the pump
	closed atomic.Bool      // set first thing in Close

	keyMu     sync.Mutex     // guards keyClosed and keyOps.Add
	keyClosed bool           // set by Close: no new key operation starts
	keyOps    sync.WaitGroup // key queries in flight (membership_keyring.go)

	closeOnce sync.Once
	closeErr  error
}

// NewMembership starts serf on cfg.BindAddr and, if cfg.Join is not empty,
// joins those members, trying cfg.JoinAttempts times with backoff. If none
// answers it shuts serf down and returns an error that wraps ErrJoinFailed
// and names the addresses. Canceling ctx ends the wait between attempts:
// serf is shut down and the error wraps ctx's.
func NewMembership(ctx context.Context, cfg MembershipConfig) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:    cfg,
		log:    cfg.Logger,
		serfCh: make(chan serf.Event, serfEventBuffer),
		events: make(chan MemberEvent, memberEventBuffer),
		stop:   make(chan struct{}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	base := m.log // serf's and memberlist's lines name their own component
	m.log = m.log.With("component", "membership")
	ring, err := cfg.keyring(m.log)
	if err != nil {
		return nil, err
	}
	s, err := serf.Create(cfg.serfConfig(m.serfCh, newSerfLogger(base), ring))
	if err != nil {
		// serf v0.10.2 leaks its query (and snapshot) goroutines when
		// memberlist fails to start, e.g. on a port in use.
		return nil, fmt.Errorf("cluster: start serf on %s: %w", cfg.BindAddr, err)
	}
	m.serf, m.ring = s, ring
	m.wg.Add(1)
	go m.pump(s.ShutdownCh())

	if len(cfg.Join) > 0 {
		if err := m.joinWithRetry(ctx, cfg.Join); err != nil {
			return nil, errors.Join(err, m.Close())
		}
	}
	return m, nil
}

// joinWithRetry joins addrs, retrying with backoff while nobody answers,
// until ctx ends.
func (m *Membership) joinWithRetry(ctx context.Context, addrs []string) error {
	backoff := m.cfg.JoinBackoff
	var err error
	for attempt := 1; ; attempt++ {
		var n int
		if n, err = m.serf.Join(addrs, true); n > 0 {
			if err != nil { // joined, but our join intent was not queued
				m.log.Warn("joined, but broadcasting the join failed", "err", err)
			}
			m.log.Info("joined cluster", "contacted", n)
			return nil
		}
		if attempt >= m.cfg.JoinAttempts {
			break
		}
		m.log.Warn("join failed, retrying", "addrs", addrs, "attempt", attempt, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: no member answered at %s in %d attempts: %w",
				ErrJoinFailed, strings.Join(addrs, ", "), attempt, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, maxJoinBackoff)
	}
	return fmt.Errorf("%w: no member answered at %s after %d attempts: %w",
		ErrJoinFailed, strings.Join(addrs, ", "), m.cfg.JoinAttempts, err)
}

// pump moves serf's events into an unbounded queue and from there into
// m.events, so that serf never waits for the consumer. It ends when Close
// closes m.stop; events still queued then are dropped.
func (m *Membership) pump(serfDown <-chan struct{}) {
	defer m.wg.Done()
	defer close(m.events)
	var queue []MemberEvent
	warnAt := memberQueueWarn
	for {
		var out chan<- MemberEvent // nil, so not selected, while queue is empty
		var head MemberEvent
		if len(queue) > 0 {
			out, head = m.events, queue[0]
		}
		select {
		case e := <-m.serfCh:
			queue = m.enqueue(queue, e)
			if len(queue) >= warnAt {
				m.log.Warn("membership events pile up: the consumer of Events is slow", "queued", len(queue))
				warnAt *= 2
			}
		case out <- head:
			queue[0] = MemberEvent{}
			if queue = queue[1:]; len(queue) == 0 {
				queue, warnAt = nil, memberQueueWarn
			}
		case <-serfDown:
			// Serf shuts itself down when it loses a name conflict.
			if !m.closed.Load() {
				m.log.Error("serf shut down on its own; this node no longer gossips (node id in use elsewhere?)")
			}
			serfDown = nil
		case <-m.stop:
			return
		}
	}
}

// enqueue appends the member events in e to queue. Serf may put several
// members in one event; each becomes its own MemberEvent.
func (m *Membership) enqueue(queue []MemberEvent, e serf.Event) []MemberEvent {
	me, ok := e.(serf.MemberEvent)
	if !ok {
		m.log.Debug("ignoring serf event", "type", e.EventType().String())
		return queue
	}
	var kind MemberEventKind
	switch me.Type {
	case serf.EventMemberJoin:
		kind = MemberJoin
	case serf.EventMemberLeave:
		kind = MemberLeave
	case serf.EventMemberFailed:
		kind = MemberFail
	case serf.EventMemberUpdate:
		kind = MemberUpdate
	case serf.EventMemberReap:
		kind = MemberReap
	default:
		return queue
	}
	for _, sm := range me.Members {
		queue = append(queue, MemberEvent{Kind: kind, Member: memberFromSerf(sm)})
	}
	return queue
}

func memberFromSerf(sm serf.Member) Member {
	return Member{
		ID:     sm.Name,
		Addr:   net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port))),
		Tags:   maps.Clone(sm.Tags),
		Status: sm.Status.String(),
	}
}

// Events returns the channel of membership changes, in the order serf saw
// them, starting with this node's own join. It is meant for one consumer,
// and is closed by Close. Events are queued without bound until read, so a
// consumer must keep reading (or Close the Membership).
func (m *Membership) Events() <-chan MemberEvent { return m.events }

// Members returns every member this node knows, including failed and left
// ones not yet reaped, sorted by ID.
func (m *Membership) Members() []Member {
	sms := m.serf.Members()
	out := make([]Member, 0, len(sms))
	for _, sm := range sms {
		out = append(out, memberFromSerf(sm))
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// LocalMember returns this node as the cluster sees it; its Addr is the
// advertised gossip address (with the real port when BindAddr had port 0).
func (m *Membership) LocalMember() Member { return memberFromSerf(m.serf.LocalMember()) }

// Join contacts the members at addrs once and returns how many answered.
// The error wraps ErrJoinFailed when none did, and is ErrClosed after Close.
// A node that has left cannot join again: Close it and start a new one.
func (m *Membership) Join(addrs []string) (int, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	n, err := m.serf.Join(addrs, true)
	if n == 0 {
		return 0, fmt.Errorf("%w: no member answered at %s: %w", ErrJoinFailed, strings.Join(addrs, ", "), err)
	}
	if err != nil {
		return n, fmt.Errorf("cluster: joined %d, but broadcasting the join failed: %w", n, err)
	}
	return n, nil
}

// Leave tells the cluster that this node leaves on purpose, so the others
// see MemberLeave instead of MemberFail. It blocks for up to twice
// BroadcastTimeout plus LeavePropagateDelay. It does not Close.
func (m *Membership) Leave() error {
	if m.closed.Load() {
		return ErrClosed
	}
	if err := m.serf.Leave(); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}

// SetTags replaces this node's tags and gossips them; the others see
// MemberUpdate.
func (m *Membership) SetTags(tags map[string]string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if err := m.serf.SetTags(maps.Clone(tags)); err != nil {
		return fmt.Errorf("cluster: set tags: %w", err)
	}
	return nil
}

// RemoveFailed is the operator's decision that the failed member id is
// gone: every member sees MemberLeave for it and stops trying to reconnect.
// It returns an error wrapping ErrMemberAlive for a member that is alive;
// an unknown id is not an error.
func (m *Membership) RemoveFailed(id string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	for _, sm := range m.serf.Members() {
		if sm.Name == id && sm.Status == serf.StatusAlive {
			return fmt.Errorf("%w: %s", ErrMemberAlive, id)
		}
	}
	if err := m.serf.RemoveFailedNode(id); err != nil {
		return fmt.Errorf("cluster: remove failed member %s: %w", id, err)
	}
	return nil
}

// Close shuts serf down (without Leave: call Leave first for a graceful
// exit, or the others see MemberFail), ends the event pump and closes the
// Events channel. It is idempotent; later calls return the first call's
// result.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		m.keyMu.Lock()
		m.keyClosed = true
		m.keyMu.Unlock()
		var errs []error
		if err := m.serf.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("cluster: shut down serf: %w", err))
		}
		close(m.stop)
		m.wg.Wait()
		m.keyOps.Wait() // a key query ends at its timeout at the latest
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

// newSerfLogger returns a *log.Logger, as serf and memberlist want, that
// writes each line to logger at the level of the line's "[LEVEL]" prefix.
func newSerfLogger(logger *slog.Logger) *log.Logger {
	return log.New(serfLogWriter{logger}, "", 0)
}

// serfLogWriter turns serf's and memberlist's log lines ("[WARN] serf:
// message") into slog records with logger=serf or logger=memberlist.
type serfLogWriter struct{ log *slog.Logger }

// Write implements io.Writer; log.Logger calls it once per line.
func (w serfLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if tag, msg, ok := strings.Cut(rest, "]"); ok {
			switch tag {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			line = strings.TrimSpace(msg)
		}
	}
	if !w.log.Enabled(context.Background(), level) {
		return len(p), nil
	}
	component := "serf"
	if name, msg, ok := strings.Cut(line, ": "); ok && (name == "serf" || name == "memberlist") {
		component, line = name, msg
	}
	w.log.Log(context.Background(), level, line, "component", component)
	return len(p), nil
}
