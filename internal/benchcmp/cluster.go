package benchcmp

// The 3-node clusters of workload (e): three `strata server` processes
// (the 2nd and 3rd --join the 1st, as cmd/strata's cluster tests start
// them) and three nats-server processes joined by cluster routes. Peers
// must know each other's ports before they start, so those ports are
// picked free (listen, close) and a node whose port was taken meanwhile
// is started again on others.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratalog/strata/internal/bench"
)

// clusterNodes is the size of (e)'s clusters.
const clusterNodes = 3

// clusterReadyWait bounds each wait for a cluster to form: on 2 cores
// shared with builds, elections and gossip can take many seconds.
const clusterReadyWait = 60 * time.Second

// waitFor retries fn every 100 ms until it returns nil, ctx ends or d
// passes; the error says what was awaited and fn's last error.
func waitFor(parent context.Context, d time.Duration, what string, fn func() error) error {
	ctx, cancel := context.WithTimeout(parent, d)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if cerr := context.Cause(parent); cerr != nil {
				return fmt.Errorf("%s: %w (last: %v)", what, cerr, err)
			}
			return fmt.Errorf("%s: not within %v: %w", what, d, err)
		case <-tick.C:
		}
	}
}

// freePort returns a port free for TCP and UDP on 127.0.0.1 (serf gossips
// over both) at the moment it is picked.
func freePort() (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		uc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			uc.Close()
			return port, nil
		}
	}
	return 0, errors.New("benchcmp: no free port")
}

// freeAddrs returns n addresses on 127.0.0.1 with free ports.
func freeAddrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		out[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return out, nil
}

// portTaken says whether a server's log shows it could not bind a port.
func portTaken(logPath string) bool {
	b, err := os.ReadFile(logPath)
	return err == nil && bytes.Contains(b, []byte("address already in use"))
}

// stopAll stops servers, all at once (a cluster's nodes stop faster
// together than one after the other, each waiting for its lost peers).
func stopAll(servers []*server) error {
	errs := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errs <- s.stop() }()
	}
	var all []error
	for range servers {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// nodeArgs returns the extra strata server flags for node id: "{node}"
// becomes the id, so that e.g. --cpuprofile=/tmp/s-{node}.prof gives each
// node its own file.
func nodeArgs(extra []string, id string) []string {
	out := make([]string, len(extra))
	for i, a := range extra {
		out[i] = strings.ReplaceAll(a, "{node}", id)
	}
	return out
}

// startStrataCluster starts clusterNodes strata servers with data under
// dir: n1 bootstraps, the others join it. It waits until n1 sees them all
// registered and alive. On error it stops what it started.
func startStrataCluster(ctx context.Context, bin, dir string, extra []string) ([]*server, error) {
	var nodes []*server
	var seed string
	for i := range clusterNodes {
		id := fmt.Sprintf("n%d", i+1)
		s, gossip, err := startStrataNode(ctx, bin, filepath.Join(dir, id), id, seed, extra)
		if err != nil {
			return nil, errors.Join(err, stopAll(nodes))
		}
		nodes = append(nodes, s)
		if seed == "" {
			seed = gossip
		}
	}
	err := waitFor(ctx, clusterReadyWait, "strata: all nodes registered", func() error {
		st, err := strataStatus(ctx, bin, nodes[0].addr)
		if err != nil {
			return err
		}
		alive := 0
		for _, n := range st.Nodes {
			if n.State == "alive" {
				alive++
			}
		}
		if alive != clusterNodes {
			return fmt.Errorf("%d of %d nodes registered and alive", alive, clusterNodes)
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(err, stopAll(nodes))
	}
	return nodes, nil
}

// startStrataNode starts one node of the cluster (joining seed unless it
// is empty) and returns it with its gossip address. A port taken between
// picking and binding is picked again, up to 3 times.
func startStrataNode(ctx context.Context, bin, dir, id, seed string, extra []string) (*server, string, error) {
	for attempt := 1; ; attempt++ {
		addrs, err := freeAddrs(3)
		if err != nil {
			return nil, "", err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, "", err
		}
		args := []string{"server", "--data-dir", filepath.Join(dir, "data"), "--node-id", id,
			"--grpc-addr", addrs[0], "--http-addr", "127.0.0.1:0", "--cluster-addr", addrs[1],
			"--gossip-addr", addrs[2], "--kafka-addr", "", "--log-level", "warn"}
		if seed != "" {
			args = append(args, "--join", seed)
		}
		args = append(args, nodeArgs(extra, id)...)
		logPath := filepath.Join(dir, "server.log")
		s, err := startProcess(ctx, "strata server "+id, bin, args, logPath, strataReadyRE)
		if err != nil && attempt < 3 && portTaken(logPath) {
			continue
		}
		return s, addrs[2], err
	}
}

// strataStatusJSON is the part of `strata cluster status --output json`
// the set-up reads.
type strataStatusJSON struct {
	Nodes []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"nodes"`
	Groups []struct {
		ID        uint32   `json:"id"`
		Leader    string   `json:"leader"`
		Preferred string   `json:"preferred"`
		Voters    []string `json:"voters"`
	} `json:"groups"`
}

// strataStatus runs `strata cluster status` against addr with the
// server's own binary, as the cluster tests do.
func strataStatus(ctx context.Context, bin, addr string) (strataStatusJSON, error) {
	var st strataStatusJSON
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "cluster", "status", "--brokers", addr, "--output", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return st, fmt.Errorf("cluster status: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("cluster status output %q: %w", out, err)
	}
	return st, nil
}

// settleStrataCluster makes the cluster's data groups of replication
// factor 3 exist and waits until each is led by its preferred leader.
// The first topic of a replication factor creates its groups, whose
// leaders are then handed to the preferred nodes a few seconds later
// (cluster/reconcile.go); a run that overlapped that would time the
// hand-over. The warm-up topic is deleted, so every run's topic lands in
// the same group as the others.
func settleStrataCluster(ctx context.Context, bin, addr string, t *bench.Strata) error {
	const warmup = "e-warmup"
	if err := t.CreateStream(ctx, warmup, 1); err != nil {
		return fmt.Errorf("strata: warm-up topic: %w", err)
	}
	err := waitFor(ctx, clusterReadyWait, "strata: data groups led by their preferred leaders", func() error {
		st, err := strataStatus(ctx, bin, addr)
		if err != nil {
			return err
		}
		groups := 0
		for _, g := range st.Groups {
			if len(g.Voters) != clusterNodes {
				continue
			}
			groups++
			if g.Leader == "" || g.Leader != g.Preferred {
				return fmt.Errorf("group %d led by %q, preferred %q", g.ID, g.Leader, g.Preferred)
			}
		}
		if groups == 0 {
			return errors.New("no data group of 3 voters yet")
		}
		return nil
	})
	return errors.Join(err, t.DeleteStream(ctx, warmup))
}

// startNATSCluster starts clusterNodes nats-servers (n1..n3) with
// JetStream stores under dir, routed to each other; syncAlways as in
// startNATS. It returns them once a stream with 3 replicas can be made.
// On error it stops what it started.
func startNATSCluster(ctx context.Context, bin, dir string, syncAlways bool) ([]*server, error) {
	for attempt := 1; ; attempt++ {
		nodes, logs, err := startNATSNodes(ctx, bin, dir, syncAlways)
		if err == nil {
			return nodes, nil
		}
		taken := false
		for _, l := range logs {
			taken = taken || portTaken(l)
		}
		if !taken || attempt == 3 {
			return nil, err
		}
	}
}

// startNATSNodes is one attempt of startNATSCluster; it returns the log
// paths so that a port taken meanwhile can be told from other failures.
func startNATSNodes(ctx context.Context, bin, dir string, syncAlways bool) ([]*server, []string, error) {
	routes, err := freeAddrs(clusterNodes)
	if err != nil {
		return nil, nil, err
	}
	var urls []string
	for _, r := range routes {
		urls = append(urls, fmt.Sprintf("%q", "nats-route://"+r))
	}
	sync := ""
	if syncAlways {
		sync = "\n  sync_interval: always"
	}
	var nodes []*server
	var logs []string
	for i, route := range routes {
		id := fmt.Sprintf("n%d", i+1)
		ndir := filepath.Join(dir, id)
		if err := os.MkdirAll(ndir, 0o755); err != nil {
			return nil, logs, errors.Join(err, stopAll(nodes))
		}
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:-1\njetstream {\n  store_dir: %q%s\n}\n"+
			"cluster {\n  name: strata-bench\n  listen: %s\n  routes: [%s]\n}\n",
			id, filepath.Join(ndir, "store"), sync, route, strings.Join(urls, ", "))
		path := filepath.Join(ndir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return nil, logs, errors.Join(err, stopAll(nodes))
		}
		logPath := filepath.Join(ndir, "server.log")
		logs = append(logs, logPath)
		s, err := startProcess(ctx, "nats-server "+id, bin, []string{"-c", path}, logPath, natsReadyRE)
		if err != nil {
			return nil, logs, errors.Join(err, stopAll(nodes))
		}
		s.addr = "nats://" + s.addr
		nodes = append(nodes, s)
	}
	if err := waitNATSCluster(ctx, nodes); err != nil {
		return nil, logs, errors.Join(err, stopAll(nodes))
	}
	return nodes, logs, nil
}

// waitNATSCluster waits until the JetStream cluster can place a stream
// on all three servers (its meta group has a leader and knows every
// peer), by creating and deleting a probe stream with 3 replicas.
func waitNATSCluster(ctx context.Context, nodes []*server) error {
	t, err := newNATSCluster(nodes, "nats-probe")
	if err != nil {
		return err
	}
	defer t.Close()
	const probe = "probe"
	err = waitFor(ctx, clusterReadyWait, "nats: JetStream cluster of 3", func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return t.CreateStream(cctx, probe, 1)
	})
	if err != nil {
		return err
	}
	return t.DeleteStream(ctx, probe)
}

// newNATSCluster connects a target to a NATS cluster: streams with one
// replica per server, producers on the stream leader's server.
func newNATSCluster(nodes []*server, name string) (*NATS, error) {
	var urls []string
	byName := map[string]string{}
	for i, n := range nodes {
		urls = append(urls, n.addr)
		byName[fmt.Sprintf("n%d", i+1)] = n.addr
	}
	t, err := NewNATS(strings.Join(urls, ","), name, jetstream.AckExplicitPolicy)
	if err != nil {
		return nil, err
	}
	t.replicas, t.serverURLs = len(nodes), byName
	return t, nil
}
