package main

// Nodes in network namespaces, so that a node can be cut off from its peers
// with iptables while the test (in the root namespace) still reaches it.
// Needs root, ip and iptables; the tests skip otherwise.

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// netLab is a bridge in the root namespace and one namespace per node.
type netLab struct {
	t       *testing.T
	prefix  string // names: <prefix>br, <prefix>n1, ...
	subnet  string // "10.213.7"
	nss     []string
	forward bool // the FORWARD rule is in place
}

func runCmd(t *testing.T, args ...string) error {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	for _, tool := range []string{"ip", "iptables", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	id := os.Getpid() % 200
	l := &netLab{t: t, prefix: fmt.Sprintf("st%d", id), subnet: fmt.Sprintf("10.213.%d", id+20)}
	br := l.prefix + "br"
	must := func(args ...string) {
		t.Helper()
		if err := runCmd(t, args...); err != nil {
			l.cleanup()
			t.Fatal(err)
		}
	}
	t.Cleanup(l.cleanup)
	must("ip", "link", "add", br, "type", "bridge")
	must("ip", "addr", "add", l.subnet+".254/24", "dev", br)
	must("ip", "link", "set", br, "up")
	// Docker sets the FORWARD policy to DROP, and bridged frames go through
	// iptables (br_netfilter): let the lab's bridge forward.
	must("iptables", "-I", "FORWARD", "-i", br, "-o", br, "-j", "ACCEPT")
	l.forward = true
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("%sn%d", l.prefix, i)
		host, peer := fmt.Sprintf("%sh%d", l.prefix, i), fmt.Sprintf("%sp%d", l.prefix, i)
		must("ip", "netns", "add", ns)
		l.nss = append(l.nss, ns)
		must("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
		must("ip", "link", "set", peer, "netns", ns)
		must("ip", "link", "set", host, "master", br)
		must("ip", "link", "set", host, "up")
		must("ip", "-n", ns, "addr", "add", fmt.Sprintf("%s.%d/24", l.subnet, i), "dev", peer)
		must("ip", "-n", ns, "link", "set", peer, "up")
		must("ip", "-n", ns, "link", "set", "lo", "up")
	}
	return l
}

func (l *netLab) cleanup() {
	for _, ns := range l.nss {
		_ = runCmd(l.t, "ip", "netns", "del", ns)
	}
	l.nss = nil
	if l.forward {
		_ = runCmd(l.t, "iptables", "-D", "FORWARD", "-i", l.prefix+"br", "-o", l.prefix+"br", "-j", "ACCEPT")
		l.forward = false
	}
	_ = runCmd(l.t, "ip", "link", "del", l.prefix+"br")
}

func (l *netLab) ip(i int) string { return fmt.Sprintf("%s.%d", l.subnet, i+1) }

// isolate cuts node i off from the other nodes (not from the test).
func (l *netLab) isolate(i int) error {
	ns := l.nss[i]
	for _, rule := range [][]string{
		{"INPUT", "-s", l.subnet + ".254", "-j", "ACCEPT"},
		{"INPUT", "-s", l.subnet + ".0/24", "-j", "DROP"},
		{"OUTPUT", "-d", l.subnet + ".254", "-j", "ACCEPT"},
		{"OUTPUT", "-d", l.subnet + ".0/24", "-j", "DROP"},
	} {
		if err := runCmd(l.t, append([]string{"ip", "netns", "exec", ns, "iptables", "-A"}, rule...)...); err != nil {
			return err
		}
	}
	return nil
}

func (l *netLab) heal(i int) error {
	return runCmd(l.t, "ip", "netns", "exec", l.nss[i], "iptables", "-F")
}

// startLabCluster starts node i in namespace i, each on its own IP with the
// default ports.
func startLabCluster(t *testing.T, l *netLab, n int) []*clusterNode {
	t.Helper()
	var nodes []*clusterNode
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		ip := l.ip(i)
		args := []string{"--node-id", id, "--grpc-addr", ip + ":7400", "--cluster-addr", ip + ":7401",
			"--gossip-addr", ip + ":7402", "--kafka-addr", ip + ":9092"}
		if i > 0 {
			args = append(args, "--join", l.ip(0)+":7402")
		}
		nd := &node{t: t, dataDir: t.TempDir(), args: args,
			prefix: []string{"nsenter", "--net=/var/run/netns/" + l.nss[i]}}
		nd.start()
		t.Cleanup(nd.stop)
		nodes = append(nodes, &clusterNode{node: nd, ID: id, Gossip: ip + ":7402"})
	}
	wait.NoError(t, 30*time.Second, "all nodes registered", func() error {
		st, err := clusterStatus(nodes[0].node)
		if err != nil {
			return err
		}
		if len(st.Nodes) != n {
			return fmt.Errorf("%d nodes registered", len(st.Nodes))
		}
		return nil
	})
	return nodes
}

// Issue 4, test 3 (STRATA_CLUSTER_LONG only): the leader of partition 0 is
// cut off from its peers for 5 s, 6 times. Nothing acknowledged is lost and
// every acknowledged record is where it was acknowledged, so the isolated
// leader acknowledged nothing after it lost its quorum; it comes back in
// sync.
func TestE2EClusterIsolatedLeader(t *testing.T) {
	if !clusterLong() {
		t.Skip("long cluster test: make test-cluster")
	}
	l := newNetLab(t, 3)
	nodes := startLabCluster(t, l, 3)
	const partitions = 3
	w := startWorkload(t, nodes, "isolated", partitions)
	for k := range 6 {
		w.flow(t, 500) // writes flow before the fault
		var leader *clusterNode
		idx := 0
		wait.NoError(t, 30*time.Second, "a leader of partition 0", func() error {
			d, err := describeTopic(nodes[(k+1)%3].node, "isolated")
			if err != nil {
				return err
			}
			for i, n := range nodes {
				if n.ID == d.Partitions[0].Leader {
					leader, idx = n, i
					return nil
				}
			}
			return fmt.Errorf("no leader yet")
		})
		if err := l.isolate(idx); err != nil {
			t.Fatal(err)
		}
		holdFault(5 * time.Second)
		if err := l.heal(idx); err != nil {
			t.Fatal(err)
		}
		wait.NoError(t, 60*time.Second, "every replica in sync again", func() error {
			d, err := describeTopic(leader.node, "isolated")
			if err != nil {
				return err
			}
			for _, p := range d.Partitions {
				if len(p.InSync) != 3 || p.Leader == "" {
					return fmt.Errorf("partition %d: leader %q, in sync %v", p.Partition, p.Leader, p.InSync)
				}
			}
			return nil
		})
		t.Logf("round %d: isolated %s for 5 s", k+1, leader.ID)
	}
	w.flow(t, 500)
	w.close()
	lost, twoRecords, twoOffsets := w.check(nodes, partitions)
	t.Logf("acknowledged %d, failed %d, consumed %d; lost %d, offsets with two records %d, records at two offsets %d, committed offsets backwards %d",
		len(w.acked), w.failed, w.consumed, lost, twoRecords, twoOffsets, w.backwards)
	if lost != 0 || twoRecords != 0 || twoOffsets != 0 || w.backwards != 0 || len(w.acked) == 0 {
		t.Errorf("guarantees broken: acknowledged %d, lost %d, offsets with two records %d, records at two offsets %d, committed offsets backwards %d",
			len(w.acked), lost, twoRecords, twoOffsets, w.backwards)
	}
}
