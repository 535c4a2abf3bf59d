package broker

import (
	"slices"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
)

// readAheadBytes is how much of the log a queue group's leader reads at a
// time past its slots (at least one whole batch). A receive wants up to
// 1,000 records or so, and a stored batch often holds more: reading and
// decoding the batch again for every receive cost more than the rest of
// the receive. What is read is kept with the leader's scratch of the
// group on that partition (queueLead.ra) until the group moves past it.
const readAheadBytes = 256 << 10

// maxReadAheadBytes is where one receive stops reading ahead: no read
// starts once this much was read (the last read may pass it by up to
// readAheadBytes, or one batch where a batch is larger).
const maxReadAheadBytes = 4 << 20

// readAhead is the records a queue group's leader read past its slots,
// in offset order. Their bytes alias the read buffers; a readAhead is
// never changed once stored, so concurrent receives share it freely.
type readAhead struct {
	recs []record.Record
}

// at returns the records at or after off.
func (ra *readAhead) at(off int64) []record.Record {
	if ra == nil || len(ra.recs) == 0 {
		return nil
	}
	// A partition's offsets are dense, so off is nearly always at its
	// distance from the first record; a receive looks up every record it
	// leases, twice, and the search was a tenth of the server's CPU.
	if i := off - ra.recs[0].Offset; i >= 0 && i < int64(len(ra.recs)) && ra.recs[i].Offset == off {
		return ra.recs[i:]
	}
	i, _ := slices.BinarySearchFunc(ra.recs, off, func(r record.Record, off int64) int {
		switch {
		case r.Offset < off:
			return -1
		case r.Offset > off:
			return 1
		}
		return 0
	})
	return ra.recs[i:]
}

// find returns the record at off, if read.
func (ra *readAhead) find(off int64) (record.Record, bool) {
	if recs := ra.at(off); len(recs) > 0 && recs[0].Offset == off {
		return recs[0], true
	}
	return record.Record{}, false
}

// readAheadFrom returns the records of the partition from next on, at
// least want of them when the log has them: those already read, and new
// reads after them when they are too few. It keeps the result for the
// next receive, and drops what it kept once the group has read all of it.
func readAheadFrom(p *cluster.Partition, l *queueLead, next int64, want int) *readAhead {
	old := l.ra.Load()
	have := old.at(next)
	if len(have) > 0 && have[0].Offset != next {
		have = nil // a gap (a reset, or records never read): read again
	}
	from := next
	if len(have) > 0 {
		from = have[len(have)-1].Offset + 1
	}
	hwm := p.Log.HighWatermark()
	if len(have) >= want || from >= hwm {
		if len(have) == 0 && old != nil {
			l.ra.Store(nil) // read to the end: keep nothing while idle
		}
		return &readAhead{recs: have}
	}
	// Read readAheadBytes at a time until want records are in, so that
	// large records (a 256 KiB read holds 250 of 1 KiB) do not cut every
	// receive short, up to maxReadAheadBytes.
	recs := have
	for read := 0; len(recs) < want && from < hwm && read < maxReadAheadBytes; {
		data, err := p.Log.Read(from, readAheadBytes)
		if err != nil || len(data) == 0 {
			break
		}
		read += len(data)
		if len(recs) == len(have) {
			// Never append to have: it is the stored read-ahead's.
			n := len(have) + min(record.CountRecords(data), len(data)/16+64)
			recs = append(make([]record.Record, 0, max(n, want)), have...)
		}
		// Corrupt bytes end the records; those before them count, as a
		// fetch gives them. The receive after the last one reads again
		// and stops there again: the group does not skip what it cannot
		// read.
		var end int64
		var corrupt error
		recs, end, corrupt = record.AppendRecordsFrom(recs, data, from)
		if corrupt != nil || end <= from {
			break
		}
		from = end
	}
	if len(recs) == len(have) {
		return &readAhead{recs: have}
	}
	ra := &readAhead{recs: recs}
	l.ra.Store(ra)
	return ra
}
