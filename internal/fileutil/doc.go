// Package fileutil holds the file-system calls that durability rests on
// and that more than one storage package needs: fdatasync of a file and
// fsync of a directory.
//
// Fdatasync flushes a file's data and the metadata needed to read it back
// (its size, not its times): on Linux fdatasync(2), retried when a signal
// interrupts it (the Go runtime's preemption signals do, and
// syscall.Fdatasync does not retry); elsewhere a full fsync through
// os.File.Sync.
//
// SyncDir fsyncs a directory, which makes the creation, renaming and
// removal of the files in it durable: a file that was fsynced can still
// vanish after a crash if the directory entry naming it was not.
//
// segment (the partition logs), cluster/raftlog (the raft write-ahead log),
// cluster (snapshots) and internal/tlsutil (certificate files) use it.
package fileutil
