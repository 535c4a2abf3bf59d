package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/client"
)

// queueWorkerEnv makes the test binary a queue worker (see TestMain): it
// consumes the queue group named by the environment until it is killed,
// failing every record whose value starts with "poison".
const queueWorkerEnv = "STRATA_E2E_QUEUE_WORKER"

// queueWorkerMain is the worker process: STRATA_BROKERS, and the topic and
// group in queueWorkerEnv as "topic/group".
func queueWorkerMain() int {
	topic, group, _ := strings.Cut(os.Getenv(queueWorkerEnv), "/")
	ctx := context.Background()
	cl, err := client.Dial(ctx, []string{os.Getenv("STRATA_BROKERS")}, client.WithRetries(20, 50*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	qc, err := client.NewQueueConsumer(cl, client.QueueConsumerConfig{Topic: topic, Group: group,
		MaxMessages: 40, MaxWait: time.Second, Concurrency: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	err = qc.Run(ctx, func(ctx context.Context, m client.QueueMessage) error {
		time.Sleep(5 * time.Millisecond) // work, so that kills find leases in flight
		if bytes.HasPrefix(m.Value, []byte("poison")) {
			return errors.New("poison record")
		}
		return nil
	})
	fmt.Fprintln(os.Stderr, "worker stopped:", err)
	return 1
}

type worker struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startWorker(t *testing.T, brokers, topicGroup string) *worker {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), queueWorkerEnv+"="+topicGroup, "STRATA_BROKERS="+brokers)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	w := &worker{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(w.kill9)
	return w
}

func (w *worker) kill9() {
	_ = w.cmd.Process.Kill()
	<-w.done
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type queueDescribe struct {
	Available    int64 `json:"available"`
	Leased       int64 `json:"leased"`
	Acked        int64 `json:"acked"`
	DeadLettered int64 `json:"dead_lettered"`
	Backlog      int64 `json:"backlog"`
	Deliveries   int64 `json:"deliveries"`
	Redeliveries int64 `json:"redeliveries"`
}

// Test 1 of issue 5: 10,000 records, 1% poison, ack timeout 2 s, max
// deliveries 5; workers are kill -9ed 10 times with leases in flight and
// the broker restarts twice (once gracefully, once kill -9). At the end
// every record is acked or dead-lettered, exactly the poison records are
// dead-lettered, after exactly 5 deliveries, with the right headers, and
// redrive brings them back.
func TestE2EQueueChaos(t *testing.T) {
	const total, poisonEvery, parts = 10000, 100, 4
	n := startNode(t, "", "--grpc-addr", freeAddr(t), "--snapshot-threshold", "256")
	n.mustCLI(nil, "topic", "create", "work", "--partitions", strconv.Itoa(parts))
	n.mustCLI(nil, "queue", "create", "workers", "--topic", "work", "--ack-timeout", "2s", "--max-deliveries", "5",
		"--backoff-initial", "100ms", "--backoff-max", "400ms")
	var in strings.Builder
	for i := range total {
		if i%poisonEvery == 0 {
			fmt.Fprintf(&in, "k%d:poison-%d\n", i, i)
		} else {
			fmt.Fprintf(&in, "k%d:ok-%d\n", i, i)
		}
	}
	n.mustCLI(strings.NewReader(in.String()), "produce", "work", "--key-separator", ":")

	workers := make([]*worker, 4)
	for i := range workers {
		workers[i] = startWorker(t, n.GRPC, "work/workers")
	}
	for kill := range 10 {
		time.Sleep(400 * time.Millisecond) // pacing of the chaos, not a wait for a condition
		w := kill % len(workers)
		if kill == 0 {
			d := n.mustCLI(nil, "queue", "describe", "workers", "--topic", "work", "--output", "json")
			t.Logf("before the first kill: %s", strings.Join(strings.Fields(d.Stdout), " "))
		}
		workers[w].kill9()
		workers[w] = startWorker(t, n.GRPC, "work/workers")
		switch kill {
		case 3:
			n.restart()
		case 7:
			n.kill9()
			n.start()
		}
	}
	var d queueDescribe
	wait.NoError(t, 90*time.Second, "every record acked or dead-lettered", func() error {
		r := n.mustCLI(nil, "queue", "describe", "workers", "--topic", "work", "--output", "json")
		if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
			t.Fatalf("describe: %v\n%s", err, r.Stdout)
		}
		if d.Backlog != 0 {
			return fmt.Errorf("backlog %d: %+v", d.Backlog, d)
		}
		return nil
	})
	for _, w := range workers {
		w.kill9()
	}
	t.Logf("final: %+v", d)
	poison := total / poisonEvery
	if d.Acked != total-int64(poison) || d.DeadLettered != int64(poison) {
		t.Fatalf("acked %d and dead-lettered %d, want %d and %d", d.Acked, d.DeadLettered, total-poison, poison)
	}
	checkDeadLetters(t, n, poison)

	r := n.mustCLI(nil, "queue", "redrive", "workers", "--topic", "work", "--output", "json")
	if !strings.Contains(r.Stdout, fmt.Sprintf(`"redriven": %d`, poison)) {
		t.Fatalf("redrive: %s", r.Stdout)
	}
	r = n.mustCLI(nil, "consume", "work", "--from-beginning", "--output", "json", "--timeout", "2s")
	back := 0
	for _, rec := range parseRecords(t, r.Stdout) {
		if rec.Headers["strata-redriven-from"] != "" {
			if !strings.HasPrefix(rec.Value, "poison-") || rec.Headers["strata-dlq-reason"] != "" {
				t.Fatalf("redriven record %+v", rec)
			}
			back++
		}
	}
	if back != poison {
		t.Fatalf("%d redriven records in the topic, want %d", back, poison)
	}
	// The redriven records are delivered again.
	r = n.mustCLI(nil, "queue", "receive", "workers", "--topic", "work", "--max", "1000", "--timeout", "3s", "--output", "json")
	if got := len(parseRecords(t, r.Stdout)); got != poison {
		t.Fatalf("received %d records after the redrive, want %d", got, poison)
	}
}

func checkDeadLetters(t *testing.T, n *node, poison int) {
	t.Helper()
	r := n.mustCLI(nil, "consume", "work.workers.dlq", "--from-beginning", "--output", "json", "--timeout", "2s")
	recs := parseRecords(t, r.Stdout)
	if len(recs) != poison {
		t.Fatalf("%d dead letters, want %d", len(recs), poison)
	}
	seen := map[string]bool{}
	for _, rec := range recs {
		h := rec.Headers
		if !strings.HasPrefix(rec.Value, "poison-") {
			t.Fatalf("a healthy record was dead-lettered: %+v", rec)
		}
		if seen[rec.Value] {
			t.Fatalf("%s dead-lettered twice", rec.Value)
		}
		seen[rec.Value] = true
		want := map[string]string{"strata-dlq-group": "workers", "strata-dlq-topic": "work",
			"strata-dlq-deliveries": "5", "strata-dlq-reason": "max-deliveries", "strata-dlq-error": "poison record"}
		for k, v := range want {
			if h[k] != v {
				t.Fatalf("dead letter %s: header %s = %q, want %q (headers %v)", rec.Value, k, h[k], v, h)
			}
		}
		if rec.Key != "k"+strings.TrimPrefix(rec.Value, "poison-") || h["strata-dlq-offset"] == "" || h["strata-dlq-partition"] == "" {
			t.Fatalf("dead letter %s: key %q, headers %v", rec.Value, rec.Key, h)
		}
	}
}
