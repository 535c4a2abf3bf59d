// Package audittest reads an audit log (auth.Audit) back for tests, one
// short line per event, so that a test compares what was audited with a
// list of strings.
package audittest

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// Events reads the audit log at path as "event principal what" lines,
// where what is the event's operation (an authorization), action (an
// administrative change) or mechanism (a login): each event has one.
func Events(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		s := func(k string) string { v, _ := m[k].(string); return v }
		out = append(out, strings.TrimSpace(s("event")+" "+s("principal")+" "+s("operation")+s("action")+s("mechanism")))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
