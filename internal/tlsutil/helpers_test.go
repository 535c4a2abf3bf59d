package tlsutil_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/tlsutil"
)

// result is the server side of one handshake.
type result struct {
	cs  tls.ConnectionState
	err error
}

// serve accepts TLS connections with cfg on 127.0.0.1:0 until the test
// ends. Each connection is handshaken, answered with one byte when that
// succeeded, and closed; the server's side of it goes to the channel
// (dropped when the channel is full).
func serve(t *testing.T, cfg *tls.Config) (string, <-chan result) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan result, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				err := tc.Handshake()
				if err == nil {
					_, err = tc.Write([]byte{'k'})
				}
				select {
				case results <- result{tc.ConnectionState(), err}:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), results
}

// dial connects with cfg and reads the server's byte: in TLS 1.3 a client
// learns that the server refused its certificate only when it reads.
func dial(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, err = io.ReadFull(c, b[:])
	return c.ConnectionState(), err
}

// serverSide waits for the server's side of the last dial.
func serverSide(t *testing.T, results <-chan result) result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no handshake result from the server within 5s")
		return result{}
	}
}

// open opens a Store or fails the test.
func open(t *testing.T, f tlsutil.Files, logger *slog.Logger) *tlsutil.Store {
	t.Helper()
	s, err := tlsutil.Open(f, logger)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}
