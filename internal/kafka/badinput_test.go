package kafka_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// closeDeadline bounds how long the listener may take to close a
// connection that sent bad input.
const closeDeadline = 5 * time.Second

// rawDial opens a plain TCP connection to the node's Kafka listener.
func rawDial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", node.KafkaAddr(), closeDeadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// frame is a request: length prefix, header v1 (key, version, correlation
// id, client id) and body.
func frame(key, version int16, corr int32, clientID string, body []byte) []byte {
	b := []byte{0, 0, 0, 0}
	b = kbin.AppendInt16(b, key)
	b = kbin.AppendInt16(b, version)
	b = kbin.AppendInt32(b, corr)
	b = kbin.AppendNullableString(b, &clientID)
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// lengthPrefixed puts a length prefix before body.
func lengthPrefixed(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// apiVersionsFrame is a well-formed ApiVersions v0 request.
func apiVersionsFrame(corr int32) []byte {
	req := kmsg.NewApiVersionsRequest()
	req.SetVersion(0)
	return frame(18, 0, corr, "raw", req.AppendTo(nil))
}

// readResponse reads one response and returns its correlation id and body.
func readResponse(t *testing.T, c net.Conn) (int32, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(closeDeadline))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatalf("read a response: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("read a response: %v", err)
	}
	if len(body) < 4 {
		t.Fatalf("response of %d bytes", len(body))
	}
	return int32(binary.BigEndian.Uint32(body)), body[4:]
}

// rawApiVersions checks that c is still served: an ApiVersions request is
// answered.
func rawApiVersions(t *testing.T, c net.Conn, corr int32) {
	t.Helper()
	if _, err := c.Write(apiVersionsFrame(corr)); err != nil {
		t.Fatalf("write on a well-behaved connection: %v", err)
	}
	got, body := readResponse(t, c)
	resp := kmsg.NewApiVersionsResponse()
	resp.SetVersion(0)
	if got != corr || resp.ReadFrom(body) != nil || resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions answer: correlation %d (want %d), %+v", got, corr, resp)
	}
}

// expectClosed checks that the listener closes c (EOF or a reset) within
// closeDeadline without answering.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	if err := waitClosed(c); err != nil {
		t.Fatal(err)
	}
}

// waitClosed waits up to closeDeadline for the listener to close c, and
// says what it did instead.
func waitClosed(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(closeDeadline))
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("connection still open after %v", closeDeadline)
	}
	if n != 0 {
		return fmt.Errorf("the listener answered %d bytes before closing", n)
	}
	return nil
}

// keepAsking sends Metadata requests through a well-behaved kgo client
// until the returned function is called, which fails the test if any
// failed: bad input on other connections must not disturb it.
func keepAsking(t *testing.T) (stop func()) {
	t.Helper()
	cl := newClient(t, kgo.RequestRetries(0))
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	n := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctxT(t), cl); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			n++
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d of %d Metadata requests of a well-behaved client failed: %v", len(errs), n, errs[0])
		}
		if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctxT(t), cl); err != nil {
			t.Fatalf("Metadata after the bad input: %v", err)
		}
	}
}

// TestBadInputClosesOnlyThatConnection: each kind of bad input closes the
// connection it came on, without an answer, while a well-behaved raw
// connection and a kgo client go on being served during and after.
func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	truncatedClientID := frame(18, 0, 1, "", nil)[:8+4]
	truncatedClientID = append(truncatedClientID, 0, 50, 'a', 'b') // client id of 50 bytes, 2 sent
	binary.BigEndian.PutUint32(truncatedClientID, uint32(len(truncatedClientID)-4))
	cases := []struct {
		name string
		in   []byte
	}{
		{"empty frame", lengthPrefixed(nil)},
		{"length shorter than a header", lengthPrefixed([]byte{0, 18, 0, 0})},
		{"header without client id", lengthPrefixed([]byte{0, 18, 0, 0, 0, 0, 0, 1})},
		{"truncated client id", truncatedClientID},
		{"unknown API key", frame(32767, 0, 1, "bad", nil)},
		{"inter-broker API key", frame(4, 0, 1, "bad", nil)}, // LeaderAndIsr
		{"negative API key", frame(-1, 0, 1, "bad", nil)},
		{"Metadata version too new", frame(3, 99, 1, "bad", kmsg.NewPtrMetadataRequest().AppendTo(nil))},
		{"Metadata negative version", frame(3, -1, 1, "bad", nil)},
		{"SaslHandshake version 0", frame(17, 0, 1, "bad", []byte{0, 5, 'P', 'L', 'A', 'I', 'N'})},
		{"Metadata truncated body", frame(3, 1, 1, "bad", []byte{0, 0, 0, 5})},
		{"ApiVersions v3 truncated header tags", frame(18, 3, 1, "bad", []byte{0x80})},
		{"good request then an unknown key", append(apiVersionsFrame(7), frame(32767, 0, 8, "bad", nil)...)},
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")},
		{"TLS client hello", append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, garbage(64)...)},
		{"garbage frame 1", lengthPrefixed(append([]byte{0x7f, 0x01}, garbage(510)...))},
		{"garbage frame 2", lengthPrefixed(append([]byte{0x40, 0x00}, garbage(4094)...))},
		{"garbage frame 3", lengthPrefixed(append([]byte{0x00, 0x3f}, garbage(62)...))},
		{"garbage after a length of 2^31-1", append([]byte{0x7f, 0xff, 0xff, 0xff}, garbage(1024)...)},
	}
	good := rawDial(t)
	rawApiVersions(t, good, 1)
	stop := keepAsking(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t)
			if _, err := c.Write(tc.in); err != nil {
				t.Fatal(err)
			}
			if tc.name == "good request then an unknown key" {
				if corr, _ := readResponse(t, c); corr != 7 {
					t.Fatalf("answer to the good request has correlation %d, want 7", corr)
				}
			}
			expectClosed(t, c)
			rawApiVersions(t, good, int32(100+i))
		})
	}
	stop()
	rawApiVersions(t, good, 2)
}

// TestOversizedLengthPrefix: a length prefix above the request limit
// (100 MiB by default), up to 2 GiB, closes the connection before the
// listener allocates it: the process allocates far less than the length in
// the meantime.
func TestOversizedLengthPrefix(t *testing.T) {
	stop := keepAsking(t)
	defer stop()
	for _, n := range []uint32{100<<20 + 1, 1 << 30, 1<<31 - 1, 1 << 31, 1<<32 - 1} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := rawDial(t)
		prefix := binary.BigEndian.AppendUint32(nil, n)
		// A request header follows, as from a client that means it.
		if _, err := c.Write(append(prefix, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff)); err != nil {
			t.Fatal(err)
		}
		closeErr := waitClosed(c)
		runtime.ReadMemStats(&after)
		// TotalAlloc only grows: an allocation freed in the meantime
		// still counts.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
			t.Fatalf("length %d: the process allocated %d MiB meanwhile", n, grew>>20)
		}
		if closeErr != nil {
			t.Fatalf("length %d: %v", n, closeErr)
		}
	}
}

// TestApiVersionsTooNew: an ApiVersions version the listener does not know
// is answered (KIP-511: version 0, UNSUPPORTED_VERSION, the supported keys)
// rather than closing, so that a newer client can fall back.
func TestApiVersionsTooNew(t *testing.T) {
	c := rawDial(t)
	if _, err := c.Write(frame(18, 99, 5, "future", []byte{1, 2, 3})); err != nil {
		t.Fatal(err)
	}
	corr, body := readResponse(t, c)
	resp := kmsg.NewApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(body); err != nil || corr != 5 || resp.ErrorCode != 35 || len(resp.ApiKeys) == 0 {
		t.Fatalf("answer to ApiVersions v99: correlation %d, error code %d (want 35), %d keys, %v",
			corr, resp.ErrorCode, len(resp.ApiKeys), err)
	}
	rawApiVersions(t, c, 6) // the connection goes on
}

// TestTagCountBomb: a flexible request whose tagged-field count is 2^32-1
// with no bytes behind it closes the connection at once. kmsg.SkipTags
// (used for the request header) and kmsg's generated ReadFrom (for the
// body) loop count times even after the reader ran dry: unbounded, a
// 19-byte request costs one core 30-50 s (measured without -race; minutes
// with it), and the listener's Close waits for it.
func TestTagCountBomb(t *testing.T) {
	stop := keepAsking(t)
	defer stop()
	for name, in := range map[string][]byte{
		"header tags": {0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"body tags":   {0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0x00, 0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		c := rawDial(t)
		start := time.Now()
		if _, err := c.Write(lengthPrefixed(in)); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("%s: closed after %v", name, d)
		}
	}
}
