package benchcmp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// server is one server process started for the comparison.
type server struct {
	name string
	cmd  *exec.Cmd
	addr string // the client address it listens on
	done chan struct{}
	log  *os.File
}

// startProcess runs bin with args, copies its standard error to logPath,
// and waits for a line matching re, whose first group is the address.
func startProcess(ctx context.Context, name, bin string, args []string, logPath string, re *regexp.Regexp) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !seen {
				seen = true
				found <- m[1]
			}
		}
	}()
	select {
	case s.addr = <-found:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("%s exited during start-up; see %s", name, logPath)
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("%s did not start in 30s; see %s", name, logPath)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

// stop asks the process to exit (SIGTERM) and kills it after 20 s.
func (s *server) stop() error {
	defer s.log.Close()
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New(s.name + " did not stop within 20s of SIGTERM")
	}
}

// pid returns the process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

var (
	natsReadyRE   = regexp.MustCompile(`Listening for client connections on (\S+)`)
	strataReadyRE = regexp.MustCompile(`^\s+grpc\s+(\S+)`)
)

// startNATS starts nats-server with JetStream on 127.0.0.1 (a free port),
// its store in dir; syncAlways sets `sync_interval: always` (fsync every
// write) instead of the default (every 2 minutes).
func startNATS(ctx context.Context, bin, dir string, syncAlways bool) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sync := ""
	if syncAlways {
		sync = "\n  sync_interval: always"
	}
	conf := fmt.Sprintf("listen: 127.0.0.1:-1\njetstream {\n  store_dir: %q%s\n}\n", filepath.Join(dir, "store"), sync)
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	name := "nats-server"
	if syncAlways {
		name += " (sync always)"
	}
	s, err := startProcess(ctx, name, bin, []string{"-c", path}, filepath.Join(dir, "server.log"), natsReadyRE)
	if err != nil {
		return nil, err
	}
	s.addr = "nats://" + s.addr
	return s, nil
}

// startStrata starts one `strata server` on 127.0.0.1 (free ports), its
// data in dir; extra flags follow (e.g. --cpuprofile).
func startStrata(ctx context.Context, bin, dir string, extra ...string) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := append([]string{"server", "--data-dir", filepath.Join(dir, "data"), "--node-id", "n1",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--kafka-addr", "", "--log-level", "warn"}, extra...)
	return startProcess(ctx, "strata server", bin, args, filepath.Join(dir, "server.log"), strataReadyRE)
}
