package auth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func decodeLines(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAuditLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	a := NewAudit(&buf)
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("X", 3600))
	a.now = func() time.Time { return at }
	a.LoginFailed("user:eve", "SCRAM-SHA-256", "10.0.0.1:5000", "bad proof\nforged line")
	a.Denied("user:bob", "produce", "topic", "orders<&>", "Produce", "10.0.0.2:6000")
	a.AdminChange("user:root", "add_acl", "allow user:bob produce on topic literal orders", "", nil)
	a.AdminChange("user:root", "delete_user", "user:x", "127.0.0.1:1", errors.New("not leader"))
	lines := decodeLines(t, buf.Bytes())
	if len(lines) != 4 || bytes.Count(buf.Bytes(), []byte("\n")) != 4 {
		t.Fatalf("want 4 lines, got %d:\n%s", len(lines), buf.Bytes())
	}
	ts := "2026-03-04T04:06:07.00000089Z"
	want := []map[string]any{
		{"time": ts, "event": "login_failed", "principal": "user:eve", "mechanism": "SCRAM-SHA-256", "remote": "10.0.0.1:5000", "reason": "bad proof\nforged line"},
		{"time": ts, "event": "denied", "principal": "user:bob", "operation": "produce", "resource": "topic", "name": "orders<&>", "method": "Produce", "remote": "10.0.0.2:6000"},
		{"time": ts, "event": "admin", "principal": "user:root", "action": "add_acl", "target": "allow user:bob produce on topic literal orders", "remote": "", "result": "ok"},
		{"time": ts, "event": "admin", "principal": "user:root", "action": "delete_user", "target": "user:x", "remote": "127.0.0.1:1", "result": "error", "error": "not leader"},
	}
	for i := range want {
		if fmt.Sprint(lines[i]) != fmt.Sprint(want[i]) {
			t.Errorf("line %d:\n got %v\nwant %v", i, lines[i], want[i])
		}
	}
	if !strings.Contains(buf.String(), "orders<&>") {
		t.Error("HTML characters were escaped")
	}
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestAuditNil(t *testing.T) {
	t.Parallel()
	var a *Audit
	a.LoginFailed("p", "m", "r", "x")
	a.Denied("p", "o", "r", "n", "m", "r")
	a.AdminChange("p", "a", "t", "r", nil)
	if a.Err() != nil {
		t.Fatal("nil audit has an error")
	}
	NewAudit(nil).Denied("p", "o", "r", "n", "m", "r") // discards
}

// chunkWriter stores every Write in small pieces and yields the processor
// between them, so writers that are not serialized interleave.
type chunkWriter struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(7, len(p))
		w.mu.Lock()
		w.out.Write(p[:k])
		w.mu.Unlock()
		p = p[k:]
		runtime.Gosched()
	}
	return n, nil
}

func TestAuditConcurrent(t *testing.T) {
	t.Parallel()
	w := &chunkWriter{}
	a := NewAudit(w)
	const writers, each = 8, 100
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				a.Denied(fmt.Sprintf("user:g%d", g), "consume", "topic", strings.Repeat("n", 100), "Fetch", fmt.Sprint(i))
			}
		}()
	}
	wg.Wait()
	lines := decodeLines(t, w.out.Bytes())
	if len(lines) != writers*each {
		t.Fatalf("%d lines, want %d", len(lines), writers*each)
	}
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAuditFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	for round := 0; round < 2; round++ {
		a, c, err := OpenAuditFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a.AdminChange("user:root", "create_topic", fmt.Sprint("t", round), "", nil)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := decodeLines(t, data); len(lines) != 2 || lines[1]["target"] != "t1" {
		t.Fatalf("file does not hold both rounds appended: %s", data)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode %v, want 0600", perm)
	}
	if _, _, err := OpenAuditFile(filepath.Join(t.TempDir(), "missing", "audit.log")); err == nil {
		t.Fatal("opening under a missing directory succeeded")
	}
}

func TestAuditWriteError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	a, c, err := OpenAuditFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	a.LoginFailed("user:x", "SCRAM-SHA-512", "", "bad proof")
	if a.Err() == nil {
		t.Fatal("write to a closed file reported no error")
	}
}
