package broker

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeDisk is the statfs and clock of a guard under test.
type fakeDisk struct {
	free  int64
	err   error
	calls int
	now   time.Duration
}

func newFakeGuard(minFree int64, interval time.Duration) (*diskGuard, *fakeDisk) {
	fd := &fakeDisk{free: 1 << 40}
	g := newDiskGuard(DiskConfig{MinFreeBytes: minFree, CheckInterval: interval}, "/data", slog.New(slog.DiscardHandler))
	g.statfs = func(string) (int64, error) { fd.calls++; return fd.free, fd.err }
	g.since = func() time.Duration { return fd.now }
	return g, fd
}

func TestDiskGuard(t *testing.T) {
	g, fd := newFakeGuard(64<<20, 200*time.Millisecond)
	if err := g.check(0); err != nil || fd.calls != 1 {
		t.Fatalf("plenty free: err %v, statfs calls %d (want nil, 1)", err, fd.calls)
	}

	// Space goes; the last measurement is trusted for the interval.
	fd.free = 3<<20 + 100<<10
	fd.now = 199 * time.Millisecond
	if err := g.check(0); err != nil || fd.calls != 1 {
		t.Fatalf("within the interval: err %v, statfs calls %d (want nil, 1)", err, fd.calls)
	}
	fd.now = 200 * time.Millisecond
	err := g.check(0)
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("3.1 MiB free of 64 MiB: got %v, want ErrDiskFull", err)
	}
	if want := "broker: disk full: 3.1 MiB free in /data, need 64 MiB"; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	for range 100 {
		if err := g.check(0); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("still full: %v", err)
		}
	}
	if fd.calls != 2 {
		t.Fatalf("statfs called %d times for 102 checks in one interval, want 2", fd.calls)
	}

	// Space comes back: accepted at the next measurement, with no restart.
	fd.free = 64 << 20
	fd.now = 400 * time.Millisecond
	if err := g.check(0); err != nil {
		t.Fatalf("exactly the minimum free: %v", err)
	}

	// Accepted produces count against the measurement until the next one.
	fd.free = 65 << 20
	fd.now = 600 * time.Millisecond
	if err := g.check(512 << 10); err != nil {
		t.Fatalf("65 MiB free, 512 KiB batch: %v", err)
	}
	if err := g.check(1); err != nil {
		t.Fatalf("64 MiB estimated free (65 less 2 x 512 KiB): %v", err)
	}
	if err := g.check(0); !errors.Is(err, ErrDiskFull) || fd.calls != 4 {
		t.Fatalf("64 MiB less 2 bytes estimated free: %v (statfs calls %d, want 4)", err, fd.calls)
	}

	// A failing statfs does not stop produces.
	fd.free, fd.err = 0, errors.New("statfs: EIO")
	fd.now = 800 * time.Millisecond
	if err := g.check(0); err != nil {
		t.Fatalf("statfs failing: %v, want produces allowed", err)
	}
}

func TestDiskGuardOff(t *testing.T) {
	var g *diskGuard = newDiskGuard(DiskConfig{MinFreeBytes: 0}, "/data", nil)
	if g != nil {
		t.Fatal("MinFreeBytes 0 made a guard")
	}
	if err := g.check(0); err != nil {
		t.Fatalf("nil guard: %v", err)
	}
	for _, c := range []DiskConfig{{MinFreeBytes: -1}, {MinFreeBytes: 1, CheckInterval: 0}} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidConfig", c, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 MiB", 3<<20 + 100<<10: "3.1 MiB", 64 << 20: "64 MiB", 3 << 30: "3 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if !strings.HasPrefix(ErrDiskFull.Error(), "broker: ") {
		t.Fatal("sentinel without the package prefix")
	}
}
