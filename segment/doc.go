/*
Package segment is the on-disk log of one partition: an append-only sequence
of Kafka v2 record batches, split into segments, with sparse offset and time
indexes, crash recovery, truncation and retention. It knows bytes and offsets
only.

# Files

A log is a directory. A segment is three files named by its base offset (the
offset of its first batch) in 20 decimal digits:

	00000000000000000000.log         record batches
	00000000000000000000.index       sparse offset index
	00000000000000000000.timeindex   sparse time index

Names are parsed strictly: Open fails with ErrUnknownFile on any other name,
and with ErrCorrupt on index files without their .log. The only other name
the package writes is <base>.log.deleted: a segment is deleted by renaming its
.log to it first, then removing the indexes and it, so a crash halfway leaves
a name that Open recognises and finishes deleting. The directory is flocked
while a Log has it open.

# .log

Batches back to back, each exactly as the producer encoded it (Kafka v2
RecordBatch, big-endian), except baseOffset, which the log assigns:

	offset size field
	     0    8 baseOffset            assigned by Append; outside the CRC
	     8    4 batchLength           bytes after this field (batch = batchLength+12)
	    12    4 partitionLeaderEpoch
	    16    1 magic                 must be 2
	    17    4 crc                   CRC32C (Castagnoli) of bytes 21..end
	    21    2 attributes            bits 0-2 codec (0-4), 3 timestamp type, 4 transactional, 5 control
	    23    4 lastOffsetDelta       >= 0; recordCount == lastOffsetDelta+1
	    27    8 firstTimestamp        ms
	    35    8 maxTimestamp          ms
	    43    8 producerId
	    51    2 producerEpoch
	    53    4 baseSequence
	    57    4 recordCount
	    61      records

Offsets are contiguous: each batch's baseOffset is the previous batch's
baseOffset+lastOffsetDelta+1, and the first batch of a segment has the
segment's base offset. Since baseOffset is outside the CRC, continuity is
what protects it. A batch larger than Config.MaxBatchBytes is invalid on
append and corruption on disk: a length field is never trusted to size an
allocation.

# .index and .timeindex

Both have one entry per index interval: a batch written when at least
IndexIntervalBytes of log have been written since the previous entry (or the
start of the segment) gets an entry in both files, at the same position, so
entry i of the two files names the same batch. The first batch of a segment
never has one.

	.index      entry 8 bytes:  relativeOffset uint32 (baseOffset - segment base), position uint32 (byte in .log)
	.timeindex  entry 12 bytes: maxTimestamp int64, relativeOffset uint32

The timestamp of a time entry is the largest maxTimestamp of all batches of
the segment up to and including the one it names, so timestamps are
non-decreasing, and when an entry's timestamp is below T no batch before its
batch has a maxTimestamp of T or more: OffsetForTime binary-searches the last
such entry and scans batch headers from there. Relative offsets and positions
are strictly increasing and never 0.

The indexes of the active segment are preallocated (fallocate) to
MaxIndexBytes and memory-mapped read-write; an appender writes an entry, then
publishes the new entry count atomically, and readers read only published
entries. A full index rolls the segment. Mappings are never remapped while
shared: a segment that Truncate reopens gets a new segment value with new
mappings, and the old ones are unmapped when its last reader lets go. When a
segment is sealed, and on Close, its index files are cut to their entries and
fsynced (the mapping stays; nothing past the entries is read).

# Writes and durability

Appends are written with pwrite under Log.mu at the end of the active
segment, which is rolled (sealed, and a new one created) when a batch would
take it past MaxSegmentBytes, when its index is full, when relative offsets
would overflow, or when its first batch is older than MaxSegmentAge. A roll
fsyncs the old segment's .log, trims and fsyncs its indexes, and only then
creates the new segment's files and fsyncs the directory: a segment that has
a successor on disk is always complete and durable.

Under FsyncAlways the .log of the active segment is also kept zero-filled a
few MiB ahead of the write position by a background goroutine (written and
fdatasynced before use): an fdatasync after overwriting allocated, written
blocks needs no journal commit for new blocks or a new size, and measured
about 1.7 times faster here for 140 KB batches. Appenders never write into
a range being zero-filled. Rolls and Close cut the file back to its data;
after a crash the zeros are read as the end of the data.

Under FsyncAlways an appender writes, joins the pending fsync round and waits.
One syncer goroutine runs rounds: it takes the pending round and the list of
segments written since the last one under Log.mu, releases the lock,
fdatasyncs them, then publishes what it covered (segment ends, the high
watermark) and wakes every appender of the round. Appenders arriving during
an fsync form the next round, so concurrent appenders share fsyncs (group
commit) and the lock is never held across an fsync. Readers see a batch
only once it is durable. Under FsyncInterval and FsyncNever a batch is
visible as soon as it is written; fsyncs happen on a ticker or in Sync. A
failed fsync or a write that cannot be undone fails the log: appends return
the error until it is reopened.

# Recovery

Open trusts nothing it reads:

  - Sealed segments (all but the last) are not scanned. Their indexes are
    checked cheaply: file sizes a multiple of the entry size (or a
    preallocated tail of zeros), entries well formed and monotonic, the last
    entry pointing at a batch with the right base offset and a timestamp
    covering it. The batch headers after the last entry are walked (length
    bounds, magic, contiguous offsets) to find the segment's next offset and
    max timestamp; the walk must end exactly at the end of the file. An index
    that disagrees, or that leaves too long a walk, is rebuilt by scanning
    the segment with full checks. Bytes that fail there are corruption in a
    sealed segment: Open returns a *CorruptError; nothing is truncated.
  - Consecutive segments must be contiguous: a segment's base offset equals
    the next offset of the one before.
  - The active segment's index files tell how it was closed. Close (like a
    roll) fsyncs the log and then cuts the index files to exactly their
    entries; while the segment is open they are preallocated. Index files cut
    to whole valid entries therefore vouch for every byte before their last
    entry: the last entries (up to 4) are checked against the log (base
    offset, CRC, a timestamp covering the batch) and verification starts
    after the last good one. Preallocated (or missing, or malformed) index
    files mean a crash: then an entry may have reached the disk while
    earlier batches, written but not yet fsynced, did not, so no entry is
    trusted and the whole segment is verified and re-indexed.
  - Verification goes batch by batch: length within [61, MaxBatchBytes] and
    inside the file, magic 2, CRC32C, contiguous base offsets. The first
    batch that fails ends the data: a zero-filled header is preallocated or
    never-written space (logged at Info), anything else a torn or corrupt
    tail (logged at Warn with the bytes and batches dropped). The file is cut
    there and fsynced, so stale bytes can never be read back as data, and
    index entries past the cut are zeroed.
  - A crash can only tear what was not yet acknowledged: under FsyncAlways no
    batch is acknowledged, nor readable, before it is fsynced, and an fsync
    covers every byte written before it.
  - Valid batches after the failing one do not make it corruption: what no
    fsync covered reaches the disk in any order of its pages, and the
    writes of the next fsync round are issued while the previous round's
    fsync runs (under FsyncNever and FsyncInterval nothing orders them at
    all), so nothing in the file tells which batches were durable. The
    caller may know: below Config.DurableOffset (a raft FSM passes its
    snapshot's high watermark, which the snapshot fsynced) a failing batch,
    or zeros, are corruption: Open returns a *CorruptError with the file
    and position and cuts nothing.

Corruption met later by a read, or by Verify, in any segment (bit rot in
bytes that were durable), returns a *CorruptError (ErrCorrupt) with the file
and byte position; it is never repaired silently. An index entry that
disagrees with the log at read time makes the read scan its segment from the
start instead.

Two fields are outside the CRC: baseOffset, protected by offset continuity,
and partitionLeaderEpoch, which Kafka brokers rewrite and which nothing here
can check. Index timestamps are checked for order and, for the last entry,
against its batch; a well-formed but wrong timestamp in an earlier entry of
a cleanly closed index (which only tampering produces) would mislead
OffsetForTime.

# Concurrency

Lock order: Log.syncMu, then Log.mu. mu guards the writer state and is held
for the write of one batch, never across an fsync. syncMu serialises fsync
rounds, rolls, Truncate, Reset, EnforceRetention and Close; a roll, Truncate
or Reset that releases mu midway sets Log.busy, and appenders wait on a
sync.Cond. Readers
take no lock: they load the published segment list, high watermark and
per-segment state atomically and take a reference on the segment they read,
so retention and truncation can remove segments under them; a reader that
raced a Truncate starts over. Wait sleeps on a channel that the next move of
the high watermark closes.
*/
package segment
