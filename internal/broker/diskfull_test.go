package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it at cleanup. Where mounting is not permitted (a developer who is not
// root) the test is skipped, except under CI=true: CI runs as root, and a
// skip there would prove nothing.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run this test: mount a tmpfs: %v", err)
		}
		t.Skipf("this test needs to mount a tmpfs (root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// ballast allocates a file that leaves about leave bytes free on dir's file
// system.
func ballast(t *testing.T, dir string, leave int64) string {
	t.Helper()
	free, err := statfsFree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if free <= leave {
		t.Fatalf("only %d bytes free, want more than %d", free, leave)
	}
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, free-leave); err != nil {
		t.Fatalf("fallocate ballast: %v", err)
	}
	return path
}

// TestProduceDiskFull fills the file system under a real node to its
// free-space minimum: produces are refused with ErrDiskFull within a
// second, nothing is written, and once the ballast is gone produces succeed
// again without a restart, their offsets following on without a gap.
func TestProduceDiskFull(t *testing.T) {
	const minFree = 4 << 20
	mnt := mountTmpfs(t, 32<<20)
	qn := openQueueNode(t, filepath.Join(mnt, "node"), func(c *Config) {
		c.Disk = DiskConfig{MinFreeBytes: minFree, CheckInterval: 5 * time.Millisecond}
	})
	b := qn.b
	ctx := ctxT(t)
	if _, err := b.CreateTopic(ctx, "t", topic.Config{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var want []string
	produce := func(v string) (ProduceResult, error) {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := b.Produce(pctx, "t", 0, batchOf(t, plain, v))
		if err == nil {
			want = append(want, v)
		}
		return res, err
	}
	for i := range 5 {
		if _, err := produce(fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	// 3 MiB free: without the guard, these 16 KiB records reach ENOSPC
	// (written twice: raft's log and the segment log) within 100 batches.
	path := ballast(t, mnt, minFree-1<<20)
	start := time.Now()
	var err error
	for i := 0; err == nil; i++ {
		// Accepted until the guard measures again (one CheckInterval): the
		// ballast is a writer it does not count.
		_, err = produce(fmt.Sprintf("racing-%d-%s", i, strings.Repeat("x", 16<<10)))
		if err == nil && time.Since(start) > time.Second {
			t.Fatalf("produce still accepted %v after the disk filled", time.Since(start))
		}
	}
	t.Logf("refused after %v: %v", time.Since(start), err)
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), mnt) {
		t.Fatalf("produce on a full disk: %v, want ErrDiskFull naming %s", err, mnt)
	}
	p := qn.node.DataGroup(mustPartitionGroup(t, b, "t")).FSM.Partition(partKey(t, b, "t", 0))
	hw := p.Log.HighWatermark()
	for i := range 20 {
		if _, err := produce(fmt.Sprintf("refused-%d", i)); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("produce %d on a full disk: %v", i, err)
		}
	}
	if got := p.Log.HighWatermark(); got != hw || int(got) != len(want) || p.Failed() {
		t.Fatalf("after refused produces: high watermark %d (was %d, %d acknowledged), failed %v", got, hw, len(want), p.Failed())
	}

	// A new partition's index files do not fit: its creation, applied by
	// the data FSM, would fail there and panic the node.
	if _, err := b.CreateTopic(ctx, "t2", topic.Config{Partitions: 1}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("create topic on a full disk: %v, want ErrDiskFull", err)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	var res ProduceResult
	wait.For(t, 2*time.Second, "a produce accepted once space is back", func() bool {
		res, err = produce("after")
		if err != nil && !errors.Is(err, ErrDiskFull) {
			t.Fatalf("produce after space came back: %v", err)
		}
		return err == nil
	})
	if res.BaseOffset != hw {
		t.Fatalf("first offset after the refusals %d, want %d (no gap)", res.BaseOffset, hw)
	}
	if got := values(t, b, "t", 0, 0); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("log holds %v, want %v", got, want)
	}
}

// mustPartitionGroup returns the data group of a one-partition topic.
func mustPartitionGroup(t *testing.T, b *Broker, topic string) uint32 {
	t.Helper()
	tp, err := b.Topic(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return tp.Partitions[0].DataGroup
}

func partKey(t *testing.T, b *Broker, topic string, p int32) cluster.PartKey {
	t.Helper()
	tp, err := b.Topic(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return cluster.PartKey{TopicID: tp.ID, Partition: p}
}
