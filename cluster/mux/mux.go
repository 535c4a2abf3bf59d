package mux

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

const (
	// muxMagic opens every multiplexed connection. It also tells the mux
	// apart from a raft NetworkTransport dialled at the port directly, whose
	// first byte is an RPC type (0 to 4).
	muxMagic byte = 'S'

	// maxGroupNameBytes bounds a group name, so that its length fits the one
	// length byte of the header.
	maxGroupNameBytes = 255

	// defaultMuxHeaderTimeout is how long an accepted connection has to send
	// its header before the mux closes it.
	defaultMuxHeaderTimeout = 5 * time.Second

	// maxAcceptBackoff caps the wait after a temporary Accept error (EMFILE),
	// as net/http does.
	maxAcceptBackoff = time.Second
)

// errLayerClosed is returned by Accept and Dial on a closed layer or mux. It
// matches both ErrClosed and net.ErrClosed, so that code written for
// net.Listener recognises it.
var errLayerClosed = fmt.Errorf("%w (%w)", ErrClosed, net.ErrClosed)

// Mux shares one TCP listener among the raft groups of a node. Each
// connection starts with a header naming its group (see the package
// documentation for the layout); the mux reads it and hands the connection
// to that group's layer, which raft's NetworkTransport accepts from.
//
// Lock order: Mux.mu before muxLayer.mu. Neither is held across a network
// call or a conn.Close.
type Mux struct {
	ln            net.Listener
	logger        *slog.Logger
	headerTimeout time.Duration
	tls           *ClusterTLS // nil: plaintext
	tlsFails      logLimiter  // warnings about failed handshakes

	closeCh   chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // the accept loop and the handshakes

	mu        sync.Mutex
	closed    bool
	advertise net.Addr // nil: ln.Addr()
	layers    map[string]*muxLayer
	pending   map[net.Conn]struct{} // accepted, header not yet read

	// wrapDial is set once, before the first layer dials (tests only).
	wrapDial DialWrapper
}

// NewMux starts accepting connections on ln and returns the mux that owns it.
// Close stops the mux and closes ln. A nil logger discards.
func NewMux(ln net.Listener, logger *slog.Logger) *Mux {
	return newMux(ln, logger, defaultMuxHeaderTimeout)
}

func newMux(ln net.Listener, logger *slog.Logger, headerTimeout time.Duration) *Mux {
	return newTLSMux(ln, logger, headerTimeout, nil)
}

// newTLSMux starts a mux; ct, when not nil, must have passed Validate.
func newTLSMux(ln net.Listener, logger *slog.Logger, headerTimeout time.Duration, ct *ClusterTLS) *Mux {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Mux{
		ln:            ln,
		logger:        logger.With("component", "raft-mux"),
		headerTimeout: headerTimeout,
		tls:           ct,
		tlsFails:      logLimiter{every: tlsFailLogEvery},
		closeCh:       make(chan struct{}),
		layers:        make(map[string]*muxLayer),
		pending:       make(map[net.Conn]struct{}),
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

// Addr returns the address the mux listens on; it is every layer's Addr and
// so the raft address of every group on this node.
func (m *Mux) Addr() net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.advertise != nil {
		return m.advertise
	}
	return m.ln.Addr()
}

// advertAddr is an advertised host:port; the host may be a name, resolved
// by each dial (a container's address can change across restarts).
type advertAddr string

func (a advertAddr) Network() string { return "tcp" }
func (a advertAddr) String() string  { return string(a) }

// ListenAddr returns the address the mux listens on, which differs from
// Addr when an advertise address is set.
func (m *Mux) ListenAddr() net.Addr { return m.ln.Addr() }

// SetAdvertise makes addr (host:port, as other nodes dial it) the address
// Addr returns, and so the raft address of every group on this node. Call
// it before Layer: raft reads a layer's address once, when the group opens.
func (m *Mux) SetAdvertise(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || port == "0" {
		return fmt.Errorf("%w: advertise address %q is not host:port", ErrInvalidConfig, addr)
	}
	m.mu.Lock()
	m.advertise = advertAddr(addr)
	m.mu.Unlock()
	return nil
}

// DialWrapper dials addr through dial, or refuses to: a test network
// (cluster.FaultNet) wraps the connections a mux dials to cut, delay or
// stall them.
type DialWrapper func(addr string, dial func() (net.Conn, error)) (net.Conn, error)

// WrapDial routes every connection the mux dials through w. Tests only:
// call it once, before any layer dials.
func (m *Mux) WrapDial(w DialWrapper) {
	m.wrapDial = w
}

// Layer registers group and returns its raft.StreamLayer. Accept yields the
// connections that named group; Dial connects to another node's mux and
// names group. Closing the layer unregisters it (the name can then be
// registered again) and closes every connection it accepted or dialled; the
// mux stays open.
//
// Layer panics if group is not a valid group name (see ValidGroupName) or is
// already registered: both are programming errors, and GroupConfig.Validate
// rejects the first. After Close, Layer returns a closed layer.
func (m *Mux) Layer(group string) raft.StreamLayer {
	if err := ValidGroupName(group); err != nil {
		panic(err)
	}
	l := &muxLayer{
		mux:      m,
		name:     group,
		header:   append([]byte{muxMagic, byte(len(group))}, group...),
		acceptCh: make(chan net.Conn),
		closeCh:  make(chan struct{}),
		conns:    make(map[*layerConn]struct{}),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		l.closed = true
		close(l.closeCh)
		return l
	}
	if _, dup := m.layers[group]; dup {
		panic(fmt.Sprintf("mux: raft group %q already has a mux layer", group))
	}
	m.layers[group] = l
	return l
}

// Close stops accepting, closes the listener, the connections still sending
// their header and every layer, and waits for the mux's goroutines. It is
// idempotent; later calls return the first call's result.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		close(m.closeCh)
		pending := make([]net.Conn, 0, len(m.pending))
		for c := range m.pending {
			pending = append(pending, c)
		}
		layers := make([]*muxLayer, 0, len(m.layers))
		for _, l := range m.layers {
			layers = append(layers, l)
		}
		m.mu.Unlock()

		var errs []error
		if err := m.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close mux listener: %w", err))
		}
		for _, c := range pending {
			_ = c.Close() // unblocks its handshake; nothing to report
		}
		for _, l := range layers {
			errs = append(errs, l.Close())
		}
		m.wg.Wait()
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var backoff time.Duration
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() || errors.Is(err, net.ErrClosed) {
				if !m.isClosed() {
					m.logger.Error("mux listener closed under the mux", "err", err)
				}
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			m.logger.Warn("mux accept failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-m.closeCh:
				return
			}
			continue
		}
		backoff = 0
		if !m.trackPending(conn) {
			_ = conn.Close()
			return
		}
		// The accept loop holds a count in wg, so this Add cannot race
		// with the Wait in Close.
		m.wg.Add(1)
		go m.handshake(conn)
	}
}

// handshake runs the TLS handshake (with ClusterTLS), reads conn's header
// and hands conn to its group's layer, or closes it. One deadline, the
// header timeout, bounds both the handshake and the header.
func (m *Mux) handshake(raw net.Conn) {
	defer m.wg.Done()
	deadline := time.Now().Add(m.headerTimeout)
	remote := raw.RemoteAddr().String()
	conn, peer, err := m.serverTLS(raw, deadline)
	if err != nil {
		m.untrackPending(raw)
		m.logTLSFailure(remote, err)
		return
	}
	group, err := readMuxHeader(conn, deadline)
	m.untrackPending(raw)
	if err != nil {
		_ = conn.Close()
		switch {
		case m.isClosed():
		case peer != "" && errors.Is(err, io.EOF):
			// A TLS peer that hangs up before any header is an admission
			// check (VerifyMemberTLS), not a fault.
			m.logger.Debug("mux: peer closed after the TLS handshake", "remote", remote, "peer", peer)
		default:
			m.logger.Warn("mux rejected connection", "remote", remote, "peer", peer, "err", err)
		}
		return
	}
	m.mu.Lock()
	l := m.layers[group]
	m.mu.Unlock()
	if l == nil {
		_ = conn.Close()
		// A peer may dial a group this node has not opened yet; raft
		// retries, so this is not a warning.
		m.logger.Info("mux rejected connection", "remote", remote, "peer", peer, "raft_group", strings.TrimPrefix(group, "data-"), "err", ErrUnknownGroup)
		return
	}
	if peer != "" {
		m.logger.Debug("mux accepted TLS connection", "remote", remote, "peer", peer, "raft_group", strings.TrimPrefix(group, "data-"))
	}
	l.deliver(conn)
}

// readMuxHeader reads the magic byte, the length byte and the group name
// before deadline, and clears the read deadline again.
func readMuxHeader(conn net.Conn, deadline time.Time) (string, error) {
	if err := conn.SetReadDeadline(deadline); err != nil {
		return "", fmt.Errorf("set header deadline: %w", err)
	}
	var buf [2 + maxGroupNameBytes]byte
	if _, err := io.ReadFull(conn, buf[:2]); err != nil {
		return "", fmt.Errorf("%w: read: %w", ErrBadHeader, err)
	}
	if buf[0] != muxMagic {
		return "", fmt.Errorf("%w: magic byte %#x, want %#x", ErrBadHeader, buf[0], muxMagic)
	}
	n := int(buf[1])
	if _, err := io.ReadFull(conn, buf[2:2+n]); err != nil {
		return "", fmt.Errorf("%w: read group name: %w", ErrBadHeader, err)
	}
	group := string(buf[2 : 2+n])
	if err := ValidGroupName(group); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return "", fmt.Errorf("clear header deadline: %w", err)
	}
	return group, nil
}

func (m *Mux) isClosed() bool {
	select {
	case <-m.closeCh:
		return true
	default:
		return false
	}
}

func (m *Mux) trackPending(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.pending[c] = struct{}{}
	return true
}

func (m *Mux) untrackPending(c net.Conn) {
	m.mu.Lock()
	delete(m.pending, c)
	m.mu.Unlock()
}

// pendingCount reports how many accepted connections have not yet sent
// their header (for tests).
func (m *Mux) pendingCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// Conns returns how many open connections the layer of group owns
// (accepted and dialled); 0 when the group has no layer. For tests and
// diagnostics.
func (m *Mux) Conns(group string) int {
	m.mu.Lock()
	l := m.layers[group]
	m.mu.Unlock()
	if l == nil {
		return 0
	}
	return l.connCount()
}

func (m *Mux) unregister(l *muxLayer) {
	m.mu.Lock()
	if m.layers[l.name] == l {
		delete(m.layers, l.name)
	}
	m.mu.Unlock()
}

// ValidGroupName reports whether name can name a raft group on the mux:
// 1 to 255 bytes of ASCII letters, digits, '.', '_' and '-'.
func ValidGroupName(name string) error {
	if name == "" || len(name) > maxGroupNameBytes {
		return fmt.Errorf("%w: group name must be 1 to %d bytes, got %d", ErrInvalidConfig, maxGroupNameBytes, len(name))
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: group name %q: byte %#x at %d is not [A-Za-z0-9._-]", ErrInvalidConfig, name, c, i)
		}
	}
	return nil
}

// muxLayer is one group's raft.StreamLayer on a Mux. It owns the
// connections it hands out (accepted or dialled) and closes them on Close,
// so that raft's per-connection goroutines end when the group does: raft's
// NetworkTransport.Close closes the stream layer but neither the connections
// it accepted nor its pooled outgoing ones.
type muxLayer struct {
	mux      *Mux
	name     string
	header   []byte
	acceptCh chan net.Conn
	closeCh  chan struct{}

	mu     sync.Mutex
	closed bool
	conns  map[*layerConn]struct{}
}

var _ raft.StreamLayer = (*muxLayer)(nil)

// deliver hands conn to Accept, or closes it if the layer or the mux closes
// first.
func (l *muxLayer) deliver(conn net.Conn) {
	lc, ok := l.track(conn)
	if !ok {
		_ = conn.Close()
		return
	}
	select {
	case l.acceptCh <- lc:
	case <-l.closeCh:
		_ = lc.Close()
	case <-l.mux.closeCh:
		_ = lc.Close()
	}
}

// Accept implements net.Listener: it returns the next connection that named
// this layer's group.
func (l *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.acceptCh:
		return c, nil
	case <-l.closeCh:
		return nil, errLayerClosed
	case <-l.mux.closeCh:
		return nil, errLayerClosed
	}
}

// Addr implements net.Listener; it is the mux's address.
func (l *muxLayer) Addr() net.Addr { return l.mux.Addr() }

// Dial implements raft.StreamLayer: it connects to the mux at address,
// completes the TLS handshake when the mux has ClusterTLS, and sends this
// layer's header, all within timeout (0: no limit).
func (l *muxLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if l.isClosed() {
		return nil, errLayerClosed
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	dial := func() (net.Conn, error) {
		d := net.Dialer{Deadline: deadline}
		return d.Dial("tcp", string(address))
	}
	var conn net.Conn
	var err error
	if w := l.mux.wrapDial; w != nil {
		conn, err = w(string(address), dial)
	} else {
		conn, err = dial()
	}
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(deadline); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("mux: set dial deadline: %w", err)
	}
	if ct := l.mux.tls; ct != nil {
		// TLS runs over the dialled conn, so a FaultNet sees its bytes.
		if conn, _, err = clientTLS(conn, ct, string(address)); err != nil {
			return nil, err
		}
	}
	if _, err := conn.Write(l.header); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("mux: send mux header to %s: %w", address, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("mux: clear dial deadline: %w", err)
	}
	lc, ok := l.track(conn)
	if !ok {
		_ = conn.Close()
		return nil, errLayerClosed
	}
	return lc, nil
}

// Close implements net.Listener: it unregisters the layer from the mux and
// closes every connection the layer handed out. It is idempotent.
func (l *muxLayer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.closeCh)
	conns := make([]*layerConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()

	l.mux.unregister(l)
	for _, c := range conns {
		_ = c.Close() // the peer sees EOF; nothing to report
	}
	return nil
}

func (l *muxLayer) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *muxLayer) track(conn net.Conn) (*layerConn, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, false
	}
	lc := &layerConn{Conn: conn, layer: l}
	l.conns[lc] = struct{}{}
	return lc, true
}

func (l *muxLayer) connCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// layerConn is a connection owned by a muxLayer; closing it removes it from
// the layer.
type layerConn struct {
	net.Conn
	layer *muxLayer
	once  sync.Once
	err   error
}

// Close closes the connection once and forgets it in its layer.
func (c *layerConn) Close() error {
	c.once.Do(func() {
		c.err = c.Conn.Close()
		c.layer.mu.Lock()
		delete(c.layer.conns, c)
		c.layer.mu.Unlock()
	})
	return c.err
}
