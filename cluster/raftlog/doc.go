/*
Package raftlog is a raft.LogStore of our own for Strata's raft groups: a
segmented write-ahead log with one fdatasync per StoreLogs call, replacing
raft-boltdb's log (two fdatasyncs and a msgpack copy per commit, and a file
that never shrinks). raft-boltdb/v2 stays the StableStore (term, vote).

# Files

A store is a directory, flocked while a Store has it open:

	00000000000000000001.seg   segments, named by the index of their first entry (20 digits)
	first-index                the first-index marker (optional)
	first-index.tmp            a marker being written; removed on open
	spare.tmp                  the next segment, being prepared; removed on open and Close

Names are parsed strictly: Open fails with ErrUnknownFile on any other name.

# Segments

A segment starts with a 24-byte header, then entries back to back, then
zeros up to the end of the file:

	offset size field
	     0    8 magic "SRAFTLG2"
	     8    8 index of the first entry, equal to the file name's
	    16    4 salt: random, never 0, drawn when the segment is created
	    20    4 CRC32C (Castagnoli) of bytes 0..19

Each entry is a frame (all integers big-endian):

	offset size field
	     0    4 length         bytes of the payload (from offset 8); 0 marks the end of the data
	     4    4 crc            CRC32C of the payload, salted (below)
	     8    8 index          raft.Log.Index
	    16    8 term           raft.Log.Term
	    24    8 appended_at    raft.Log.AppendedAt in Unix nanoseconds; 0 for the zero time
	    32    1 type           raft.Log.Type; top bit: sync point (below)
	    33    4 data length    d
	    37    d data           raft.Log.Data
	 37+d     4 ext length     e
	 41+d     e extensions     raft.Log.Extensions

so length = 33+d+e. A length below 33 or above Config.MaxEntryBytes is
corruption, never an allocation. The crc is salted with the segment's salt:
it is the CRC32C computation continued from the salt instead of from 0 (Go:
crc32.Update(salt, castagnoliTable, payload); a salt of 0 gives the plain
CRC32C). Records are client bytes and may hold whole frames; the salt never
leaves the store, and for any payload a salted crc differs from the plain
one (the two differ by a function of the salt and the length that is
one-to-one in the salt), so a record cannot hold a frame that recovery would
take for one of ours (a sync point, below) without knowing the salt. Entries
are contiguous: entry i of a segment has index first+i, and each segment's
first index follows the previous segment's last.

A segment is SegmentBytes long. Segments are preallocated (unless NoSync):
once the last segment is half full (or there is none), a background
goroutine allocates spare.tmp to SegmentBytes (fallocate, or writing zeros
where that is unsupported) and fdatasyncs it, and the next roll renames it
to the new segment's name (its header, with a fresh salt, written then), so
that the fdatasync of every StoreLogs writes into allocated space of a file
whose size does not change (about 1.5x faster here than appending to a
growing file; see spare.go). Zeros after the data are read as its end.
Without a spare (NoSync, or a failed preparation) the file grows as it is
written.

Segments written before salts existed have the magic "SRAFTLG1" and the
header magic 8, first index 8, CRC32C of bytes 0..15 4, zero 4. They are
read with salt 0 (plain CRC32C) and never written to again: the first
StoreLogs after Open rolls to a new SRAFTLG2 segment when the last segment
is SRAFTLG1. A binary that knows only SRAFTLG1 reads an SRAFTLG2 header as
bad: it fails on a sealed SRAFTLG2 segment, but takes an SRAFTLG2 last
segment after SRAFTLG1 ones for an interrupted roll and removes it, so going
back to such a binary is not safe.

# Writes

StoreLogs takes entries that follow the last index one by one (on an empty
store they may start anywhere: the store is a raft.MonotonicLogStore, so raft
deletes the whole log after restoring a snapshot instead of leaving a gap).
It encodes the batch into a buffer, writes it with pwrite at the end of the
last segment, fdatasyncs once, and only then publishes the new entries to
GetLog. The first entry of every call is marked as a sync point (the top
bit of its type byte, under the CRC; raft's types never use it): it is
written only after everything before it in the log was durable, since the
previous call returned after its fdatasync (and Open fdatasyncs the last
segment before the first call). A batch that fills the segment fdatasyncs it before the next segment
is created, so a sealed segment never has a torn tail; creating a segment
fsyncs the directory. After a failed write or fsync the store takes no more
writes (ErrFailed) until it is reopened.

# Deletes

DeleteRange(min, max) deletes a head (raft's compaction), a tail (a follower
dropping conflicting entries) or everything:

  - head: the marker first-index is written (to first-index.tmp, fdatasync,
    rename, fsync of the directory), then the segments whose entries are all
    below it are removed. Entries below the marker are gone even while their
    segment is kept, and a crash between the steps cannot bring them back.
  - tail: segments after min's are removed from the last one backwards (a
    crash leaves a prefix of the log), then min's segment is cut at min's
    frame with ftruncate and fsynced, and allocated to SegmentBytes again
    when preallocating. A cut is all or nothing in a crash; overwriting
    the frames with zeros was not (a crash could keep later frames and not
    the zeros before them, which recovery would take for corruption).
  - everything: the marker becomes last+1 and every segment is removed.

# Recovery

Open trusts nothing. Segments entirely below the marker are removed (an
interrupted compaction). Every segment but the last is scanned frame by
frame: its header, each length against its bounds, each index against its
position, and its entries must reach the next segment's first index; any
fault is a *CorruptError with the file and position. Their CRCs are checked
by GetLog, on every read, not by Open.

The last segment is checked entry by entry, CRC included. A torn tail is
only what follows the last fsynced frame, and a write that no fdatasync
completed can reach the disk in any order of its sectors; so at the first
fault (a bad length, frame, CRC or index, or a zero length) the rest of the
file is searched, at every byte position up to its last nonzero byte, for a
sync point: a frame that decodes, salted CRC included, marked as a sync
point, with a higher index (and room for the entries between). One was
written after the bad entry had been fsynced and acknowledged, so the fault
is corruption: Open fails with a *CorruptError naming the file, the position
of the bad entry and the sync point found, and changes nothing. Without one,
the fault is a torn write (of the last StoreLogs call, whose frames after
the bad one, if intact, were not acknowledged either): the data ends there,
this is logged, and if anything but zeros follows, the file is cut there, so
that a stale frame behind the new end can never be read as an entry once new
ones are written. The last segment is then fdatasynced. The search looks
inside records too, which is why the crc is salted: a frame that a record
holds does not decode. What follows the data is read once, backwards from
the end of the file to its last nonzero byte (on a clean start, all the
zeros of a preallocated segment), for both the search and the cut.

A last segment without a valid header was created by a roll that no fsync
completed, and is removed, unless it shows the header was durable: the
header one bit off a valid one (a torn roll leaves the header's sector zero
or whole), its first entry intact (header and first frame share the first
512-byte sector, which disks write whole), or a sync point, salted with the
salt field as it stands, after its first entry; then Open fails with a
*CorruptError at position 0. A last segment without entries is removed as
well.

What this cannot tell: a flipped bit in the entries of the last StoreLogs
call, with no later call, looks like a torn write and is cut (nothing on
disk tells the two apart without a second fsync per call). Under NoSync
nothing is durable, and sync points promise nothing. An SRAFTLG1 last
segment (from before the upgrade; written to no more) is treated as before
sync points existed: its sync points are unsalted, a record could forge
them, so they prove nothing and every fault in it is a torn tail. A header
damaged in more than one bit whose first entry is damaged too looks like a
torn roll.
*/
package raftlog
