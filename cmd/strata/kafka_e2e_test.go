package main

// Kafka end-to-end tests: Debian's kcat (librdkafka), a client Strata did
// not write, against a real `strata server` process's Kafka listener.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/internal/kafka"
)

var kafkaBannerRE = regexp.MustCompile(`(?m)^\s+kafka\s+(\S+)`)

// kafkaAddr is the node's Kafka address, from its start-up banner.
func kafkaAddr(t *testing.T, n *node) string {
	t.Helper()
	m := kafkaBannerRE.FindStringSubmatch(n.log.String())
	if m == nil {
		t.Fatalf("no kafka line in the banner:\n%s", n.log.String())
	}
	return m[1]
}

// needKcat returns kcat's path. Without kcat the test is skipped, except
// under CI=true, where `make tools` installs it and a skip would prove
// nothing.
func needKcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run this test: kcat not found (make tools installs Debian's kcat): %v", err)
		}
		t.Skipf("kcat not found (make tools installs it): %v", err)
	}
	return path
}

// kcatRunner runs kcat against one broker.
type kcatRunner struct {
	t    *testing.T
	bin  string
	addr string
}

// newKcat starts a node and returns a kcat of its Kafka listener (the
// test is skipped first when kcat is missing, see needKcat).
func newKcat(t *testing.T) (*node, *kcatRunner) {
	t.Helper()
	bin := needKcat(t)
	n := startNode(t, "")
	return n, &kcatRunner{t: t, bin: bin, addr: kafkaAddr(t, n)}
}

// run runs kcat with args and stdin; a non-zero exit fails the test.
func (k *kcatRunner) run(stdin string, args ...string) string {
	k.t.Helper()
	out, errOut, err := k.try(stdin, args...)
	if err != nil {
		k.t.Fatalf("kcat %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// try runs kcat with args and stdin, within a minute.
func (k *kcatRunner) try(stdin string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := append([]string{"-b", k.addr, "-X", "broker.address.family=v4", "-X", "api.version.request=true"}, args...)
	cmd := exec.CommandContext(ctx, k.bin, all...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// kcatMetadata is the part of `kcat -L -J` the tests read.
type kcatMetadata struct {
	Brokers []struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"brokers"`
	Topics []struct {
		Topic      string `json:"topic"`
		Error      string `json:"error"`
		Partitions []struct {
			Partition int32  `json:"partition"`
			Leader    int32  `json:"leader"`
			Error     string `json:"error"`
		} `json:"partitions"`
	} `json:"topics"`
}

// TestE2EKafkaKcatMetadata: `kcat -L` lists the node (its numeric id and
// Kafka address) and a topic created with the CLI, with a leader for each
// partition.
func TestE2EKafkaKcatMetadata(t *testing.T) {
	n, k := newKcat(t)
	n.mustCLI(nil, "topic", "create", "kmeta", "--partitions", "3")
	id := kafka.NodeID32("n1")
	wait.NoError(t, 30*time.Second, "kcat -L to show kmeta with leaders", func() error {
		out, errOut, err := k.try("", "-L", "-J", "-t", "kmeta")
		if err != nil {
			return fmt.Errorf("kcat -L: %v: %s", err, errOut)
		}
		var md kcatMetadata
		if err := json.Unmarshal([]byte(out), &md); err != nil {
			return fmt.Errorf("kcat -L -J output %q: %v", out, err)
		}
		if len(md.Brokers) != 1 || md.Brokers[0].ID != id || md.Brokers[0].Name != k.addr {
			return fmt.Errorf("brokers %+v, want id %d at %s", md.Brokers, id, k.addr)
		}
		if len(md.Topics) != 1 || md.Topics[0].Topic != "kmeta" || len(md.Topics[0].Partitions) != 3 {
			return fmt.Errorf("topics %+v, want kmeta with 3 partitions", md.Topics)
		}
		for _, p := range md.Topics[0].Partitions {
			if p.Leader != id || p.Error != "" {
				return fmt.Errorf("partition %d: leader %d, error %q", p.Partition, p.Leader, p.Error)
			}
		}
		return nil
	})
	// The plain listing names the broker and the topic as people read it.
	out := k.run("", "-L")
	for _, want := range []string{fmt.Sprintf("broker %d at %s", id, k.addr), `topic "kmeta" with 3 partitions`} {
		if !strings.Contains(out, want) {
			t.Errorf("kcat -L lacks %q:\n%s", want, out)
		}
	}
}

// produceLines produces key:value lines to topic with kcat.
func (k *kcatRunner) produceLines(topic string, lines []string) {
	k.t.Helper()
	k.run(strings.Join(lines, "\n")+"\n", "-P", "-t", topic, "-K", ":", "-p", "0")
}

// TestE2EKafkaKcatProduceConsume: keyed records produced with `kcat -P`
// come back in order, keys and values intact, with `kcat -C -e -o
// beginning`, and through the CLI's own consumer too.
func TestE2EKafkaKcatProduceConsume(t *testing.T) {
	n, k := newKcat(t)
	n.mustCLI(nil, "topic", "create", "kpc", "--partitions", "1")
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprintf("key-%d:value-%d", i, i))
	}
	k.produceLines("kpc", lines)
	out := k.run("", "-C", "-t", "kpc", "-e", "-o", "beginning", "-f", "%k:%s\n")
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !slices.Equal(got, lines) {
		t.Fatalf("consumed %d records, want %d in order:\n%s", len(got), len(lines), out)
	}
	// Strata's own consumer reads what kcat produced.
	cli := n.mustCLI(nil, "consume", "kpc", "--from-beginning", "--max", "100", "--timeout", "10s")
	if !strings.Contains(cli.Stdout, "value-0") || !strings.Contains(cli.Stdout, "value-99") {
		t.Fatalf("strata consume of kcat's records:\n%s\n%s", cli.Stdout, cli.Stderr)
	}
}

// TestE2EKafkaKcatGroup: `kcat -G` consumes as a group member, commits,
// and a second run of the same group starts after what the first read.
func TestE2EKafkaKcatGroup(t *testing.T) {
	n, k := newKcat(t)
	n.mustCLI(nil, "topic", "create", "kgrp", "--partitions", "2")
	first := []string{"a:1", "b:2", "c:3"}
	k.produceLines("kgrp", first)
	consume := func() []string {
		t.Helper()
		// -o in -G mode would be a hard start offset for every run: the
		// start of a group without commits is auto.offset.reset's.
		out := k.run("", "-G", "kcat-group", "-e", "-f", "%k:%s\n", "-X", "auto.offset.reset=earliest",
			"-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100", "kgrp")
		got := strings.Fields(out)
		slices.Sort(got)
		return got
	}
	if got := consume(); !slices.Equal(got, first) {
		t.Fatalf("first group run read %v, want %v", got, first)
	}
	second := []string{"d:4", "e:5"}
	k.produceLines("kgrp", second)
	if got := consume(); !slices.Equal(got, second) {
		t.Fatalf("second group run read %v, want only the new %v (committed offsets)", got, second)
	}
}

var kcatOffsetRE = regexp.MustCompile(`\[0\]\s+offset\s+(-?\d+)`)

// TestE2EKafkaKcatOffsetQuery: `kcat -Q -t T:0:-1` answers partition 0's
// end offset, and -2 its start.
func TestE2EKafkaKcatOffsetQuery(t *testing.T) {
	n, k := newKcat(t)
	n.mustCLI(nil, "topic", "create", "koff", "--partitions", "1")
	k.produceLines("koff", []string{"a:1", "b:2", "c:3", "d:4", "e:5"})
	for ts, want := range map[string]int64{"-1": 5, "-2": 0} {
		out := k.run("", "-Q", "-t", "koff:0:"+ts)
		m := kcatOffsetRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("kcat -Q -t koff:0:%s printed %q", ts, out)
		}
		if got, _ := strconv.ParseInt(m[1], 10, 64); got != want {
			t.Fatalf("kcat -Q -t koff:0:%s: offset %d, want %d", ts, got, want)
		}
	}
}
