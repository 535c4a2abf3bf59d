package browsertest

// A cluster of real strata processes on 127.0.0.1, set up with the strata
// CLI and the console's HTTP API.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// strataBin is the strata binary the tests run.
var strataBin string

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

// run finds (or builds) the strata binary and runs the tests.
func run(m *testing.M) (int, error) {
	strataBin = os.Getenv("STRATA_BIN")
	if strataBin == "" {
		dir, err := os.MkdirTemp("", "strata-browsertest-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		strataBin = filepath.Join(dir, "strata")
		// The main module is three directories up.
		build := exec.Command("go", "build", "-o", strataBin, "./cmd/strata")
		build.Dir = filepath.Join("..", "..", "..")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return 0, fmt.Errorf("build strata (or set STRATA_BIN): %w", err)
		}
	} else if abs, err := filepath.Abs(strataBin); err == nil {
		strataBin = abs
	}
	if _, err := os.Stat(strataBin); err != nil {
		return 0, fmt.Errorf("strata binary: %w", err)
	}
	return m.Run(), nil
}

// freePort returns a port free for TCP and UDP on 127.0.0.1 (gossip uses
// both).
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		uc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			uc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// syncBuffer is a bytes.Buffer safe for a writer and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// node is one strata server process.
type node struct {
	ID   string
	GRPC string
	HTTP string // base URL of the console
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

var bannerRE = regexp.MustCompile(`(?m)^\s+(grpc|http)\s+(\S+)`)

// startNode starts `strata server` with args and waits for its banner.
func startNode(t *testing.T, id string, args ...string) (*node, error) {
	t.Helper()
	all := append([]string{"server", "--data-dir", t.TempDir(), "--node-id", id, "--http-addr", "127.0.0.1:0",
		"--kafka-addr", "127.0.0.1:0", "--log-level", "warn"}, args...)
	n := &node{ID: id, cmd: exec.Command(strataBin, all...), log: &syncBuffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	n.cmd.Stderr, n.cmd.Stdout = pw, n.log
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start strata: %w", err)
	}
	go func() {
		_ = n.cmd.Wait()
		pw.Close()
		close(n.done)
	}()
	type addrs struct{ grpc, http string }
	ready := make(chan addrs, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		var a addrs
		sent := false
		for sc.Scan() {
			line := sc.Text()
			n.log.Write([]byte(line + "\n"))
			if m := bannerRE.FindStringSubmatch(line); m != nil && !sent {
				if m[1] == "grpc" {
					a.grpc = m[2]
				} else {
					a.http, sent = m[2], true
					ready <- a
				}
			}
		}
	}()
	select {
	case a := <-ready:
		n.GRPC, n.HTTP = a.grpc, "http://"+a.http
		return n, nil
	case <-n.done:
		return nil, fmt.Errorf("strata server %s exited during start-up:\n%s", id, n.log.String())
	case <-time.After(60 * time.Second):
		n.stop()
		return nil, fmt.Errorf("strata server %s did not start in 60s:\n%s", id, n.log.String())
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 20 s).
func (n *node) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

// startCluster starts three nodes; the first bootstraps, the others join
// it through gossip. It waits until the first node's console shows all
// three.
func startCluster(t *testing.T) []*node {
	t.Helper()
	var nodes []*node
	seed := ""
	for i := range 3 {
		id := fmt.Sprintf("n%d", i+1)
		for attempt := 1; ; attempt++ {
			gossip := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			args := []string{"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
				"--cluster-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--gossip-addr", gossip}
			if seed != "" {
				args = append(args, "--join", seed)
			}
			n, err := startNode(t, id, args...)
			if err != nil && attempt < 3 && strings.Contains(err.Error(), "address already in use") {
				continue // another process took a port: pick others
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(n.stop)
			if seed == "" {
				seed = gossip
			}
			nodes = append(nodes, n)
			break
		}
	}
	waitFor(t, 60*time.Second, "3 nodes in the overview", func() string {
		var o struct {
			Nodes []struct{ State string } `json:"nodes"`
		}
		if err := getJSON(nodes[0].HTTP+"/api/v1/overview", &o); err != nil {
			return err.Error()
		}
		alive := 0
		for _, n := range o.Nodes {
			if n.State == "alive" {
				alive++
			}
		}
		if alive != 3 {
			return fmt.Sprintf("%d nodes alive", alive)
		}
		return ""
	})
	return nodes
}

// cli runs the strata CLI against the node, with stdin.
func (n *node) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, args...)
	cmd.Env = append(os.Environ(), "STRATA_BROKERS="+n.GRPC)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("strata %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// getJSON reads a JSON answer of the console.
func getJSON(url string, v any) error {
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// waitFor retries fn until it returns "" or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		msg := fn()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, d, msg)
		}
		<-tick.C
	}
}
