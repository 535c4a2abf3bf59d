package cluster

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hl := newHCLogger(logger, "raft").With("raft_group", "meta").Named("net")

	if !hl.IsInfo() || hl.IsDebug() || hl.IsTrace() {
		t.Fatalf("IsInfo/IsDebug/IsTrace = %v/%v/%v, want true/false/false at slog Debug",
			hl.IsInfo(), hl.IsDebug(), hl.IsTrace())
	}
	hl.Info("entering leader state", "term", 3)
	hl.Debug("hidden below slog debug")
	hl.Warn("heartbeat timeout", "err", errors.New("boom"))
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="entering leader state" component=raft.net raft_group=meta term=3`,
		`level=WARN msg="heartbeat timeout" component=raft.net raft_group=meta err=boom`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("raft Debug reached a slog Debug handler:\n%s", out)
	}

	hl.SetLevel(hclog.Error)
	buf.Reset()
	hl.Warn("filtered")
	if buf.Len() != 0 {
		t.Errorf("SetLevel(Error) let a Warn through: %s", buf.String())
	}
	if _, ok := newHCLogger(nil, "raft").(interface{ IsError() bool }); !ok || newHCLogger(nil, "raft").IsError() {
		t.Error("nil slog logger must give a logger that discards")
	}
}
