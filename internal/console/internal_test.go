package console

import (
	"errors"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"MaxScanRecords": func(c *Config) { c.MaxScanRecords = 0 },
		"MaxScanBytes":   func(c *Config) { c.MaxScanBytes = 10 },
		"MaxResults":     func(c *Config) { c.MaxResults = 0 },
		"MaxValueBytes":  func(c *Config) { c.MaxValueBytes = 1 },
		"MaxTailWait":    func(c *Config) { c.MaxTailWait = -time.Second },
		"RequestTimeout": func(c *Config) { c.RequestTimeout = 0 },
		"SessionTTL":     func(c *Config) { c.SessionTTL = 0 },
		"MaxSessions":    func(c *Config) { c.MaxSessions = 0 },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s out of bounds: %v", name, err)
		}
	}
}

func TestResumeRoundTrip(t *testing.T) {
	pos, err := parseResume("2:40, 0:7,1:0")
	if err != nil || len(pos) != 3 || pos[2] != 40 || pos[0] != 7 {
		t.Fatalf("parse: %v %v", pos, err)
	}
	if s := formatResume(pos); s != "0:7,1:0,2:40" {
		t.Fatalf("format: %q", s)
	}
	for _, bad := range []string{"", "0", "0:-1", "-1:3", "a:b", "0:1,"} {
		if _, err := parseResume(bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("resume %q: %v", bad, err)
		}
	}
}

func TestHexDump(t *testing.T) {
	got := hexDump([]byte("Hello, world!\x00\x01\x7fABCDEF"))
	want := "00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 00 01 7f  |Hello, world!...|\n" +
		"00000010  41 42 43 44 45 46                                 |ABCDEF|\n"
	if got != want {
		t.Fatalf("hex dump:\n%s\nwant:\n%s", got, want)
	}
}

func TestShowTruncatesAndMarks(t *testing.T) {
	c := &Console{cfg: DefaultConfig()}
	c.cfg.MaxValueBytes = 16
	r := c.show([]byte("0123456789abcdefXYZ"), "text")
	if r.Text != "0123456789abcdef" || !r.Truncated || r.Size != 19 {
		t.Fatalf("truncated: %+v", r)
	}
	if r := c.show([]byte{0xff, 'a'}, "text"); !r.Binary || r.Text != "\uFFFDa" {
		t.Fatalf("binary: %+v", r)
	}
	if r := c.show(nil, "json"); !r.Null {
		t.Fatalf("nil: %+v", r)
	}
	if r := c.show([]byte("not json"), "json"); r.View != "text" || r.Text != "not json" {
		t.Fatalf("json view of text: %+v", r)
	}
}

func TestSessionsExpireAndAreBounded(t *testing.T) {
	s := newSessionStore(time.Hour, 2)
	now := time.Now()
	a := s.create("a", [32]byte{1}, now)
	s.create("b", [32]byte{2}, now.Add(time.Second))
	s.create("c", [32]byte{3}, now.Add(2*time.Second))
	if _, ok := s.get(a, now.Add(3*time.Second)); ok {
		t.Fatal("the oldest session outlived the bound")
	}
	d := s.create("d", [32]byte{4}, now)
	if _, ok := s.get(d, now.Add(59*time.Minute)); !ok {
		t.Fatal("a session ended before its time")
	}
	if _, ok := s.get(d, now.Add(61*time.Minute)); ok {
		t.Fatal("a session outlived its time")
	}
	if _, ok := s.get("forged", now); ok {
		t.Fatal("an unknown token opened a session")
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1700000000000": 1700000000000,
		"2024-01-02T03:04:05Z": 1704164645000, "2024-01-02T03:04": 1704164640000} {
		if got, err := parseTime(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	if _, err := parseTime("yesterday"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("yesterday: %v", err)
	}
}
