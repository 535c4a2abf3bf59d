package main

// The end-to-end tests start the real strata binary, built once by
// TestMain, and drive it with the real CLI and gRPC clients.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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

var strataBin string

// serverSpec says which binary a node's server runs and what it adds to
// the server's environment; the zero value runs strataBin as it is.
type serverSpec struct {
	bin string   // default strataBin
	env []string // added to the server process's environment
}

var failpointsBuild struct {
	once sync.Once
	bin  string
	err  error
}

// withFailpoint is the server of a test that must be able to fail: strata
// built with -tags failpoints (once per test binary, on first use), with
// the failpoint name switched on by STRATA_FAILPOINTS (see
// internal/broker/failpoint.go).
func withFailpoint(t testing.TB, name string) serverSpec {
	t.Helper()
	failpointsBuild.once.Do(func() {
		bin := filepath.Join(filepath.Dir(strataBin), "strata-failpoints")
		build := exec.Command("go", "build", "-tags", "failpoints", "-o", bin, ".")
		if out, err := build.CombinedOutput(); err != nil {
			failpointsBuild.err = fmt.Errorf("build strata -tags failpoints: %w\n%s", err, out)
			return
		}
		failpointsBuild.bin = bin
	})
	if failpointsBuild.err != nil {
		t.Fatal(failpointsBuild.err)
	}
	return serverSpec{bin: failpointsBuild.bin, env: []string{"STRATA_FAILPOINTS=" + name}}
}

func TestMain(m *testing.M) {
	if os.Getenv(queueWorkerEnv) != "" {
		os.Exit(queueWorkerMain()) // a worker process of TestE2EQueueChaos
	}
	dir, err := os.MkdirTemp("", "strata-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", strataBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build strata:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
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

// node is one running `strata server` process.
type node struct {
	t       testing.TB
	dataDir string
	args    []string
	prefix  []string // command the server runs under, if any
	env     []string // extra environment of CLI runs (security flags)
	server  serverSpec
	cmd     *exec.Cmd
	log     *syncBuffer
	done    chan struct{}
	GRPC    string
	HTTP    string
}

var bannerRE = regexp.MustCompile(`(?m)^\s+(grpc|http)\s+(\S+)`)

// startNode starts a node on free ports with its data in dataDir (a new
// temporary directory when empty) and waits until it serves.
func startNode(t testing.TB, dataDir string, extra ...string) *node {
	t.Helper()
	return startNodeSpec(t, serverSpec{}, dataDir, extra...)
}

// startNodeSpec is startNode with the server that spec says.
func startNodeSpec(t testing.TB, spec serverSpec, dataDir string, extra ...string) *node {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	n := &node{t: t, dataDir: dataDir, args: extra, server: spec}
	n.start()
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *node) start() {
	n.t.Helper()
	if err := n.tryStart(); err != nil {
		n.t.Fatal(err)
	}
}

// tryStart starts the process and waits until it serves, or returns why
// it did not.
func (n *node) tryStart() error {
	n.t.Helper()
	args := append([]string{"server", "--data-dir", n.dataDir, "--node-id", "n1",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--kafka-addr", "127.0.0.1:0", "--log-level", "warn"}, n.args...)
	bin := strataBin
	if n.server.bin != "" {
		bin = n.server.bin
	}
	if len(n.prefix) > 0 { // e.g. nsenter into a network namespace
		n.cmd = exec.Command(n.prefix[0], append(append(n.prefix[1:len(n.prefix):len(n.prefix)], bin), args...)...)
	} else {
		n.cmd = exec.Command(bin, args...)
	}
	if len(n.server.env) > 0 {
		n.cmd.Env = append(os.Environ(), n.server.env...)
	}
	logBuf := &syncBuffer{}
	n.log = logBuf
	pr, pw := io.Pipe()
	n.cmd.Stderr = pw
	n.cmd.Stdout = logBuf
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start strata: %w", err)
	}
	done := make(chan struct{})
	n.done = done
	cmd := n.cmd
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(done)
	}()
	// The scanner goroutine owns only its locals: it may outlive this
	// start (draining the pipe) while a restart starts the next process.
	type addrs struct{ grpc, http string }
	ready := make(chan addrs, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		var a addrs
		seen := false
		for sc.Scan() {
			line := sc.Text()
			logBuf.Write([]byte(line + "\n"))
			if m := bannerRE.FindStringSubmatch(line); m != nil && !seen {
				if m[1] == "grpc" {
					a.grpc = m[2]
				} else {
					a.http = m[2]
					seen = true
					ready <- a
				}
			}
		}
	}()
	select {
	case a := <-ready:
		n.GRPC, n.HTTP = a.grpc, a.http
		return nil
	case <-n.done:
		return fmt.Errorf("strata server exited during start-up:\n%s", n.log.String())
	case <-time.After(30 * time.Second):
		return fmt.Errorf("strata server did not start in 30s:\n%s", n.log.String())
	}
}

// restart stops the node gracefully and starts it again on new ports.
func (n *node) restart() {
	n.t.Helper()
	n.stop()
	n.start()
}

// kill9 kills the process without any chance to flush or close.
func (n *node) kill9() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		// SIGQUIT makes the Go runtime print every goroutine: the log
		// then shows where the shutdown hangs.
		_ = n.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-n.done:
		case <-time.After(2 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.done
		}
		n.t.Errorf("strata server did not stop within 20s of SIGTERM:\n%s", n.log.String())
	}
}

// cliResult is what one CLI run printed.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

// cli runs `strata args...` against the node with stdin.
func (n *node) cli(ctx context.Context, stdin io.Reader, args ...string) cliResult {
	n.t.Helper()
	cmd := exec.CommandContext(ctx, strataBin, args...)
	cmd.Env = append(append(os.Environ(), "STRATA_BROKERS="+n.GRPC), n.env...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatalf("run strata %s: %v", strings.Join(args, " "), err)
	}
	return cliResult{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// mustCLI runs the CLI and fails the test on a non-zero exit.
func (n *node) mustCLI(stdin io.Reader, args ...string) cliResult {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := n.cli(ctx, stdin, args...)
	if r.Code != 0 {
		n.t.Fatalf("strata %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}
