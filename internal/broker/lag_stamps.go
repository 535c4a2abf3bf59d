package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/cluster"
)

// Lag in seconds is the age of the first record a group has not consumed:
// a timestamp that only the log holds. Reading it at scrape time would read
// one batch from disk per lagging partition and group for every scrape, so
// scrapes read a cache instead (lookup), and a loop of the broker fills it
// (refresh): at most once per stampInterval, at most stampReadsPerRound
// reads a round, and only for positions that moved. A scrape may so report
// the age of a position the group has since left, by at most the time it
// took to get there: an upper bound of the lag that the next round
// corrects.

const (
	// stampInterval is the shortest time between two rounds of reads.
	stampInterval = 10 * time.Second
	// stampReadsPerRound bounds the batch reads of a round; the others
	// wait for the next round.
	stampReadsPerRound = 256
	// stampIdle is how long an entry no scrape asked for is kept.
	stampIdle = 10 * time.Minute
)

// stampReads counts the batches read for a record's timestamp
// (recordTimeAt), so that a test can tell that a scrape read none.
var stampReads atomic.Int64

// stampKey names one position: a consumer ("g:" and a stream group's name,
// or "q:" and a queue group's) on one partition.
type stampKey struct {
	owner string
	part  cluster.PartKey
}

type stamp struct {
	offset int64
	ts     time.Time
	used   time.Time // last lookup
}

type stampWant struct {
	log    cluster.LogView
	offset int64
}

// stampCache holds the timestamps of the records at consumers' positions.
type stampCache struct {
	interval time.Duration // between rounds: stampInterval (tests change it before Start)

	mu   sync.Mutex // guards have and want
	have map[stampKey]stamp
	want map[stampKey]stampWant
	wake chan struct{} // one slot: a round is wanted
}

func newStampCache() *stampCache {
	return &stampCache{interval: stampInterval, have: map[stampKey]stamp{}, want: map[stampKey]stampWant{}, wake: make(chan struct{}, 1)}
}

// lookup returns the timestamp of the record at offset of lg for k, as the
// cache has it: exact when it holds that offset, the timestamp of an earlier
// position of k when the consumer moved on since the last round, and
// nothing when it knows no position at or before offset. It never reads
// the log; a position it does not hold is read by the next round.
func (c *stampCache) lookup(k stampKey, lg cluster.LogView, offset int64, now time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.have[k]
	if ok {
		e.used = now
		c.have[k] = e
	}
	if !ok || e.offset != offset {
		c.want[k] = stampWant{log: lg, offset: offset}
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	if ok && e.offset <= offset {
		return e.ts, true
	}
	return time.Time{}, false
}

// loop runs rounds when lookups want positions read, at most one per
// interval, until stop closes.
func (c *stampCache) loop(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-c.wake:
		}
		c.refresh(time.Now())
		t.Reset(c.interval)
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// refresh reads the positions wanted (up to stampReadsPerRound) and drops
// the entries no scrape asked for in stampIdle. The reads run without the
// lock, so lookups never wait for the disk.
func (c *stampCache) refresh(now time.Time) {
	c.mu.Lock()
	batch := make(map[stampKey]stampWant, min(len(c.want), stampReadsPerRound))
	for k, w := range c.want {
		if len(batch) == stampReadsPerRound {
			break
		}
		batch[k] = w
		delete(c.want, k)
	}
	for k, e := range c.have {
		if now.Sub(e.used) > stampIdle {
			delete(c.have, k)
		}
	}
	more := len(c.want) > 0
	c.mu.Unlock()
	read := make(map[stampKey]stamp, len(batch))
	for k, w := range batch {
		if ts, ok := recordTimeAt(w.log, w.offset); ok {
			read[k] = stamp{offset: w.offset, ts: ts, used: now}
		}
	}
	c.mu.Lock()
	for k, s := range read {
		c.have[k] = s
	}
	c.mu.Unlock()
	if more {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}
