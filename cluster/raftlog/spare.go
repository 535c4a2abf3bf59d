package raftlog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// spareSyncBytes is how much zero fill is written between fdatasyncs, so that
// the fill's fsyncs stay short next to the ones StoreLogs waits for.
const spareSyncBytes = 4 << 20

// zeros is the source of zero-fill writes.
var zeros [1 << 20]byte

// spare prepares the next segment file in the background: spare.tmp, zero
// filled to SegmentBytes and fdatasynced, so that the fsyncs of StoreLogs
// overwrite allocated, written blocks (about 1.7x faster here than appending
// to a growing file). The goroutine prepares one file per kick and hands it
// over on ready; roll kicks it again once it has renamed the file.
type spare struct {
	path  string
	size  int64
	log   *slog.Logger
	kickC chan struct{}
	ready chan *os.File // nil when preparing failed
	stop  chan struct{}
	done  chan struct{}
}

// startSpare starts preparing the first spare of s.
func startSpare(s *Store) *spare {
	p := &spare{
		path:  filepath.Join(s.dir, spareName),
		size:  s.cfg.SegmentBytes,
		log:   s.log,
		kickC: make(chan struct{}, 1),
		ready: make(chan *os.File),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go p.loop()
	p.kick()
	return p
}

// kick asks for the next spare.
func (p *spare) kick() {
	select {
	case p.kickC <- struct{}{}:
	default:
	}
}

// take waits for the spare being prepared and returns it, or nil if
// preparing it failed: the caller then creates the segment itself.
func (p *spare) take() *os.File {
	select {
	case f := <-p.ready:
		return f
	case <-p.done:
		return nil
	}
}

func (p *spare) loop() {
	defer close(p.done)
	for {
		select {
		case <-p.kickC:
		case <-p.stop:
			return
		}
		f, err := p.prepare()
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				p.log.Warn("raftlog: preparing a preallocated segment failed; the next one grows as it is written", "err", err)
			}
			f = nil
		}
		select {
		case p.ready <- f:
		case <-p.stop:
			if f != nil {
				_ = f.Close()
			}
			return
		}
	}
}

// prepare creates the spare file and zero-fills it.
func (p *spare) prepare() (*os.File, error) {
	f, err := os.OpenFile(p.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, err
	}
	for pos := int64(0); pos < p.size; {
		select {
		case <-p.stop:
			_ = f.Close()
			return nil, ErrClosed
		default:
		}
		n := min(int64(len(zeros)), p.size-pos)
		if _, err = f.WriteAt(zeros[:n], pos); err != nil {
			break
		}
		pos += n
		if pos%spareSyncBytes == 0 || pos == p.size {
			if err = fdatasync(f); err != nil {
				break
			}
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("zero-fill %s: %w", p.path, err)
	}
	return f, nil
}

// close stops the goroutine and removes the spare file.
func (p *spare) close() error {
	close(p.stop)
	<-p.done
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
