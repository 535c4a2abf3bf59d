package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
)

// syncBuffer is a log destination that goroutines share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// logNode starts a plaintext single node whose logs go to a buffer in
// format at level (changeable through its LogLevelVar), and returns it
// with the buffer and a client.
func logNode(t *testing.T, format string, level slog.Level, mutate func(*Config)) (*Agent, *syncBuffer, stratav1.StrataClient) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.NodeID, cfg.MetadataVoters, cfg.DataGroups = t.TempDir(), "n-logs", 1, 2
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr, cfg.KafkaAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.MinFreeDiskBytes = -1
	cfg.LogFormat = format
	cfg.LogLevelVar = new(slog.LevelVar)
	cfg.LogLevelVar.Set(level)
	if mutate != nil {
		mutate(&cfg)
	}
	buf := &syncBuffer{}
	logger, err := NewLogger(buf, cfg.LogFormat, cfg.LogLevelVar)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return a, buf, stratav1.NewStrataClient(conn)
}

// produceOne creates topic (when missing) and writes one record to it.
func produceOne(t *testing.T, c stratav1.StrataClient, topic, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: topic, Config: &stratav1.TopicConfig{Partitions: 1}})
	batch, err := record.AppendBatch(nil, []record.Record{{Value: []byte(value), Timestamp: time.Now()}}, record.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx, &stratav1.ProduceRequest{Topic: topic, Batch: batch}); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// jsonKeys decodes one JSON object and returns its top-level keys in
// order (duplicates included) and its values.
func jsonKeys(line string) ([]string, map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		return nil, nil, err
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, nil, err
		}
	}
	return keys, m, nil
}

// TestJSONLogs: with --log-format json every line a node writes, from
// start to shutdown and at debug level (raft, serf and memberlist
// included), is a JSON object with the node's id, a component, no key
// twice, and raft_group as a string where present.
func TestJSONLogs(t *testing.T) {
	a, buf, c := logNode(t, "json", slog.LevelDebug, nil)
	produceOne(t, c, "logged", "v")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	components := map[string]int{}
	lines := buf.lines()
	for i, line := range lines {
		keys, m, err := jsonKeys(line)
		if err != nil {
			t.Fatalf("line %d is not JSON (%v): %s", i, err, line)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] {
				t.Errorf("line %d has key %q twice: %s", i, k, line)
			}
			seen[k] = true
		}
		if m["node"] != "n-logs" {
			t.Errorf("line %d: node = %v, want n-logs: %s", i, m["node"], line)
		}
		comp, _ := m["component"].(string)
		if comp == "" {
			t.Errorf("line %d has no component: %s", i, line)
		}
		components[comp]++
		if g, ok := m["raft_group"]; ok {
			if s, isStr := g.(string); !isStr || s == "" || strings.HasPrefix(s, "data-") {
				t.Errorf(`line %d: raft_group %#v, want "meta" or a data group's id: %s`, i, g, line)
			}
		}
	}
	for _, want := range []string{"raft", "cluster", "serf"} {
		if components[want] == 0 {
			t.Errorf("no line of component %s in %d lines (components %v)", want, len(lines), components)
		}
	}
}

// httpDo sends a request to the node's HTTP port and returns the status
// and body.
func httpDo(t *testing.T, a *Agent, method, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// countSlow counts the slow-request lines of a text log.
func countSlow(buf *syncBuffer) int {
	n := 0
	for _, l := range buf.lines() {
		if strings.Contains(l, `msg="slow request"`) {
			n++
		}
	}
	return n
}

// TestLogLevelAtRunTime: PUT /api/v1/log-level changes the level of the
// running node's logger. Every call is slow here (1 ns): its Warn line is
// dropped at level error and written once the level is warn.
func TestLogLevelAtRunTime(t *testing.T) {
	a, buf, c := logNode(t, "text", slog.LevelError, func(cfg *Config) { cfg.SlowRequest = time.Nanosecond })
	produceOne(t, c, "levels", "at error")
	if n := countSlow(buf); n != 0 {
		t.Fatalf("%d slow-request lines at level error, want 0", n)
	}
	if code, body := httpDo(t, a, "GET", "/api/v1/log-level", "", nil); code != 200 || body != `{"level":"error"}` {
		t.Fatalf("GET log-level: %d %s", code, body)
	}
	if code, body := httpDo(t, a, "PUT", "/api/v1/log-level", `{"level":"warn"}`, nil); code != 200 || body != `{"level":"warn"}` {
		t.Fatalf("PUT log-level warn: %d %s", code, body)
	}
	produceOne(t, c, "levels", "at warn")
	if n := countSlow(buf); n == 0 {
		t.Fatalf("no slow-request line after the level went to warn:\n%s", strings.Join(buf.lines(), "\n"))
	}
	for _, bad := range []struct{ method, body, hdr string }{
		{"PUT", `{"level":"loud"}`, ""},
		{"PUT", `level=debug`, ""},
		{"PUT", `{"level":"debug","extra":1}`, ""},
		{"POST", `{"level":"debug"}`, ""},
		{"PUT", `{"level":"debug"}`, "cross-site"},
	} {
		hdr := map[string]string{}
		if bad.hdr != "" {
			hdr["Sec-Fetch-Site"] = bad.hdr
		}
		if code, body := httpDo(t, a, bad.method, "/api/v1/log-level", bad.body, hdr); code < 400 {
			t.Errorf("%s %s (%s): %d %s, want refused", bad.method, bad.body, bad.hdr, code, body)
		}
	}
	if lv := a.cfg.LogLevelVar.Level(); lv != slog.LevelWarn {
		t.Errorf("level after refused changes = %v, want WARN", lv)
	}
}

// TestSlowRequestLog: a call slower than SlowRequest (1 ns here: every
// call) is logged at Warn with its method, duration, peer and principal,
// and the time a fetch waits in its long poll is not counted in its
// duration (with a threshold between the two, the poll is not logged).
func TestSlowRequestLog(t *testing.T) {
	const wait = 700 * time.Millisecond
	_, buf, c := logNode(t, "json", slog.LevelInfo, func(cfg *Config) { cfg.SlowRequest = time.Nanosecond })
	produceOne(t, c, "polled", "v")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := c.Fetch(ctx, &stratav1.FetchRequest{Topic: "polled", Offset: 1, MaxWaitMs: int32(wait.Milliseconds())}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < wait {
		t.Fatalf("the long poll answered after %v, before its wait of %v", d, wait)
	}
	byMethod := map[string]map[string]any{}
	for _, l := range buf.lines() {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "slow request" {
			byMethod[fmt.Sprint(m["method"])] = m
		}
	}
	for _, method := range []string{"CreateTopic", "Produce", "Fetch"} {
		l := byMethod[method]
		if l == nil || l["level"] != "WARN" || l["principal"] != auth.Anonymous || l["component"] != "grpc" ||
			l["code"] != "OK" || !strings.HasPrefix(fmt.Sprint(l["peer"]), "127.0.0.1:") {
			t.Errorf("slow-request line of %s: %v, want WARN, OK, the anonymous principal, grpc and a peer on 127.0.0.1", method, l)
		}
	}
	l := byMethod["Fetch"]
	served, _ := l["duration"].(float64) // ns
	waited, _ := l["waited"].(float64)
	if time.Duration(served) >= wait/2 || time.Duration(waited) < wait*9/10 {
		t.Errorf("slow fetch logged with duration %v, waited %v; want its %v long poll counted apart",
			time.Duration(served), time.Duration(waited), wait)
	}
}
