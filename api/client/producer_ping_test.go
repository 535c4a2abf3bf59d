package client_test

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/stratalog/strata/api/client"
)

// TestProduceSyncNoPingPerMessage checks that producing one record at a
// time costs one HTTP/2 frame exchange per record and no PINGs: with gRPC's
// BDP estimation on (no fixed flow-control window on one side or the
// other), each received DATA frame is answered with a PING whenever no
// estimate is in flight, which here is every request and every answer, and
// adds a write and a wake-up on both sides to each record's latency.
func TestProduceSyncNoPingPerMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var frames frameCounts
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, counts: &frames, out: frameReader{preface: true}}, nil
	}
	c, err := client.Dial(ctx, brokers, client.WithDialOptions(grpc.WithContextDialer(dial)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const topic = "ping-per-message"
	if _, err := client.NewAdmin(c).CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := client.DefaultProducerConfig()
	cfg.Linger = 0
	p, err := client.NewProducer(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce := func(n int) {
		t.Helper()
		for range n {
			if _, err := p.Produce(ctx, &client.Record{Topic: topic, Value: make([]byte, 128)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(5) // the stream is open and the connection settled
	before := frames.snapshot()
	const n = 50
	produce(n)
	after := frames.snapshot()
	sent, recv := after.pingsOut-before.pingsOut, after.pingsIn-before.pingsIn
	t.Logf("%d records: %d DATA frames sent, %d received; PINGs %d sent, %d received",
		n, after.dataOut-before.dataOut, after.dataIn-before.dataIn, sent, recv)
	if sent > n/10 || recv > n/10 {
		t.Errorf("%d records one at a time: %d PINGs sent and %d received, want about none (BDP estimation is on)", n, sent, recv)
	}
}

// frameCounts counts HTTP/2 frames by direction.
type frameCounts struct {
	mu                sync.Mutex
	pingsOut, pingsIn int // PINGs that are not acks
	dataOut, dataIn   int
}

type frameTotals struct{ pingsOut, pingsIn, dataOut, dataIn int }

func (f *frameCounts) snapshot() frameTotals {
	f.mu.Lock()
	defer f.mu.Unlock()
	return frameTotals{f.pingsOut, f.pingsIn, f.dataOut, f.dataIn}
}

// frameReader splits one direction of an HTTP/2 connection into frames.
type frameReader struct {
	preface bool // the client connection preface comes first
	buf     []byte
}

const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// feed takes the next bytes and calls frame with the type and flags of each
// frame they complete.
func (r *frameReader) feed(b []byte, frame func(typ, flags byte)) {
	r.buf = append(r.buf, b...)
	if r.preface {
		if len(r.buf) < len(http2Preface) {
			return
		}
		r.buf, r.preface = r.buf[len(http2Preface):], false
	}
	for len(r.buf) >= 9 {
		n := int(binary.BigEndian.Uint32(append([]byte{0}, r.buf[:3]...)))
		if len(r.buf) < 9+n {
			return
		}
		frame(r.buf[3], r.buf[4])
		r.buf = r.buf[9+n:]
	}
}

// countingConn counts the HTTP/2 frames the client writes and reads.
type countingConn struct {
	net.Conn
	counts  *frameCounts
	in, out frameReader
}

const (
	frameData = 0x0
	framePing = 0x6
	flagAck   = 0x1
)

func (c *countingConn) Write(b []byte) (int, error) {
	c.counts.mu.Lock()
	c.out.feed(b, func(typ, flags byte) { c.counts.count(typ, flags, &c.counts.dataOut, &c.counts.pingsOut) })
	c.counts.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.counts.mu.Lock()
	c.in.feed(b[:n], func(typ, flags byte) { c.counts.count(typ, flags, &c.counts.dataIn, &c.counts.pingsIn) })
	c.counts.mu.Unlock()
	return n, err
}

// count adds one frame. Caller must hold f.mu.
func (f *frameCounts) count(typ, flags byte, data, pings *int) {
	switch {
	case typ == frameData:
		*data++
	case typ == framePing && flags&flagAck == 0:
		*pings++
	}
}
