package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// request is one request on its way through a handler.
type request struct {
	c        *conn
	kreq     kmsg.Request
	version  int16
	corr     int32
	clientID string
	// closeAfter, set by the handler, ends the connection once the
	// response is written (a failed authentication).
	closeAfter bool
}

// finish computes a response; it may block (a commit, a long poll, a
// rebalance) and runs in a goroutine of its own. A nil response sends
// nothing (a produce with acks=0).
type finish func() kmsg.Response

// handler starts a request in the reading goroutine, in request order, and
// returns what finishes it. An error closes the connection (a request
// that breaks the protocol).
type handler func(s *Server, r *request) (finish, error)

// api is one API key the listener serves, with its versions.
type api struct {
	key, min, max int16
	h             handler
}

// apis are the served API keys, registered by the init function of each
// API's file. ApiVersions advertises exactly these.
var apis = map[int16]api{}

func register(key, min, max int16, h handler) {
	if _, dup := apis[key]; dup {
		panic(fmt.Sprintf("kafka: API key %d registered twice", key))
	}
	apis[key] = api{key: key, min: min, max: max, h: h}
}

// done answers a request at once with resp.
func done(resp kmsg.Response) finish { return func() kmsg.Response { return resp } }

// conn is one client connection.
type conn struct {
	s  *Server
	nc net.Conn

	// Owned by the reading goroutine.
	principal string // auth.Anonymous until SASL succeeds (or a client certificate names one)
	sasl      *saslState
	saslDone  bool
}

// pending is a response being computed, in request order.
type pending struct {
	corr     int32
	flexible bool // response header v1 (a tag buffer)
	resp     chan kmsg.Response
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, nc: nc, principal: auth.Anonymous}
}

// serve reads requests until the connection ends, and writes their
// responses in order.
func (c *conn) serve() {
	defer c.nc.Close()
	if err := c.handshake(); err != nil {
		c.s.log.Debug("TLS handshake failed", "remote", c.nc.RemoteAddr().String(), "err", err)
		return
	}
	out := make(chan pending, c.s.cfg.MaxInFlight)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.write(out)
	}()
	err := c.read(out)
	close(out)
	<-writerDone
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.s.log.Debug("connection closed", "remote", c.nc.RemoteAddr().String(), "err", err)
	}
}

func (c *conn) read(out chan<- pending) error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var size [4]byte
	for {
		if err := c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
			return err
		}
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return err
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 8 || n > c.s.cfg.MaxRequestBytes {
			return fmt.Errorf("request length %d not in [8, %d]", n, c.s.cfg.MaxRequestBytes)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return err
		}
		p, closeAfter, err := c.dispatch(body)
		if err != nil {
			return err
		}
		select {
		case out <- p:
		case <-c.s.ctx.Done():
			return net.ErrClosed
		}
		if closeAfter {
			return errAuthFailed
		}
	}
}

// dispatch parses one request and starts it; closeAfter ends the
// connection once its response is written.
func (c *conn) dispatch(body []byte) (p pending, closeAfter bool, err error) {
	r, a, flexible, err := c.parse(body)
	if err != nil {
		return pending{}, false, err
	}
	p, err = c.start(a, r, flexible)
	return p, r.closeAfter, err
}

// parse reads a request's header and body.
func (c *conn) parse(body []byte) (*request, api, bool, error) {
	rd := kbin.Reader{Src: body}
	key, version, corr := rd.Int16(), rd.Int16(), rd.Int32()
	clientID := rd.NullableString()
	if rd.Complete() != nil {
		return nil, api{}, false, errors.New("truncated request header")
	}
	a, ok := apis[key]
	if !ok {
		return nil, api{}, false, fmt.Errorf("unknown or unsupported API key %d", key)
	}
	kreq := kmsg.RequestForKey(key)
	if key == apiVersionsKey && version > a.max {
		// KIP-511: answer a too-new ApiVersions with version 0 and
		// UNSUPPORTED_VERSION, without parsing a body we do not know.
		return &request{c: c, kreq: kreq, version: version, corr: corr}, a, false, nil
	}
	if kreq == nil || version < a.min || version > a.max {
		return nil, api{}, false, fmt.Errorf("API key %d version %d not in [%d, %d]", key, version, a.min, a.max)
	}
	kreq.SetVersion(version)
	if kreq.IsFlexible() {
		// Bounded, unlike kmsg.SkipTags and kmsg's decoders (flexcheck.go).
		if err := skipTags(&rd); err != nil {
			return nil, api{}, false, fmt.Errorf("request header tags: %w", err)
		}
		if err := checkFlexible(key, version, rd.Src); err != nil {
			return nil, api{}, false, err
		}
	}
	if err := kreq.ReadFrom(rd.Src); err != nil {
		return nil, api{}, false, fmt.Errorf("API key %d version %d: malformed request: %w", key, version, err)
	}
	r := &request{c: c, kreq: kreq, version: version, corr: corr}
	if clientID != nil {
		r.clientID = *clientID
	}
	if c.s.cfg.Security != nil && c.s.cfg.Security.Required() && c.principal == auth.Anonymous &&
		key != apiVersionsKey && key != saslHandshakeKey && key != saslAuthenticateKey {
		return nil, api{}, false, fmt.Errorf("API key %d before authentication", key)
	}
	// The response header is flexible when the request is, except for
	// ApiVersions, whose response header is always version 0.
	return r, a, kreq.IsFlexible() && key != apiVersionsKey, nil
}

// start runs the handler's first step and, unless the answer is
// immediate, its second in a goroutine.
func (c *conn) start(a api, r *request, flexible bool) (pending, error) {
	begin := time.Now()
	fin, err := a.h(c.s, r)
	if err != nil {
		return pending{}, err
	}
	p := pending{corr: r.corr, flexible: flexible, resp: make(chan kmsg.Response, 1)}
	principal := c.principal // read where parse reads it, not in the goroutine
	go func() {
		resp := fin()
		c.s.m.count(a.key, resp)
		c.logSlow(a.key, time.Since(begin), principal)
		p.resp <- resp
	}()
	return p, nil
}

// write sends the responses in request order.
func (c *conn) write(in <-chan pending) {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var buf []byte
	failed := false
	for p := range in {
		resp := <-p.resp
		var release func()
		if lr, ok := resp.(*leasedResponse); ok {
			resp, release = lr.Response, lr.release
		}
		if failed || resp == nil {
			if release != nil {
				release()
			}
			continue
		}
		buf = append(buf[:0], 0, 0, 0, 0)
		buf = kbin.AppendInt32(buf, p.corr)
		if p.flexible {
			buf = append(buf, 0) // no tagged fields
		}
		buf = resp.AppendTo(buf)
		if release != nil {
			release() // the records are copied into buf
		}
		binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
		if _, err := bw.Write(buf); err != nil {
			failed = true
			c.nc.Close()
			continue
		}
		if len(in) == 0 {
			if err := bw.Flush(); err != nil {
				failed = true
				c.nc.Close()
			}
		}
	}
}

// handshake completes a TLS handshake within the handshake timeout and
// takes the principal of a verified client certificate.
func (c *conn) handshake() error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	st := tc.ConnectionState()
	if c.s.cfg.CertPrincipal != nil && len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
		c.principal = c.s.cfg.CertPrincipal(st.VerifiedChains[0][0])
	}
	return nil
}

// logSlow logs a request that took longer than Config.SlowRequest, but
// for those that wait by design.
func (c *conn) logSlow(key int16, d time.Duration, principal string) {
	slow := c.s.cfg.SlowRequest
	if slow <= 0 || d <= slow || key == fetchKey || key == joinGroupKey || key == syncGroupKey {
		return
	}
	c.s.log.Warn("slow request", "api", kmsg.NameForKey(key), "duration", d,
		"peer", c.nc.RemoteAddr().String(), "principal", principal)
}
