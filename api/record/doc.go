// Package record encodes and decodes Strata's records in the Kafka v2
// RecordBatch layout, and holds the Kafka-compatible key partitioner. The
// Go client builds batches with it and the broker reads them with it, so
// the producer and the server agree byte for byte.
//
// # Batch layout
//
// A batch is a 61-byte header followed by its records. All integers in the
// header are big-endian; the CRC is CRC-32C (Castagnoli) over everything
// from the attributes to the end of the batch, so the broker can rewrite
// the base offset (and the leader epoch) without touching it.
//
//	offset  size  field
//	     0     8  base offset (0 from a producer; assigned by the broker)
//	     8     4  length: bytes after this field (batch size - 12)
//	    12     4  partition leader epoch (-1 from a producer)
//	    16     1  magic (2)
//	    17     4  CRC-32C of bytes 21..end
//	    21     2  attributes: bits 0-2 codec (0 none, 1 gzip, 2 snappy,
//	              3 lz4, 4 zstd), bit 3 timestamp type (1 = log append
//	              time), bit 4 transactional, bit 5 control batch
//	    23     4  last offset delta (record count - 1)
//	    27     8  first timestamp (ms since the Unix epoch)
//	    35     8  max timestamp (ms)
//	    43     8  producer id (-1 when not idempotent)
//	    51     2  producer epoch (-1 when not idempotent)
//	    53     4  base sequence (-1 when not idempotent)
//	    57     4  record count
//	    61     …  records, compressed as a whole when the codec is not 0
//
// Each record is:
//
//	varint  length of the rest of the record
//	int8    attributes (0)
//	varlong timestamp delta from the first timestamp
//	varint  offset delta from the base offset
//	varint  key length (-1 for a nil key), then the key
//	varint  value length (-1 for a nil value), then the value
//	varint  header count, then per header: varint key length, key,
//	        varint value length (-1 for nil), value
//
// Varints are zig-zag encoded base-128, as in protobuf's sint64.
//
// # Codecs
//
// Compressed records use the formats Kafka uses: gzip (RFC 1952), snappy
// (a raw snappy block when written; raw blocks and the xerial framing that
// Java clients write are both read), LZ4 (the LZ4 frame format) and zstd
// (a zstd frame).
//
// # Decoding
//
// DecodeBatches and DecodeBatchesFrom never trust their input: every
// length is checked against the bytes present, the CRC is verified before
// a batch is decompressed, and no batch may decompress to more than
// MaxDecompressedBytes. Corrupt input gives an error wrapping ErrCorrupt,
// ErrChecksum or ErrTooLarge, never a panic. A partial batch at the end
// of the input (a fetch cut at its byte limit) is not an error: it is
// ignored.
//
// To keep decoding free of per-record allocations, a decoded record's Key,
// Value and header values alias the input (or, for a compressed batch, a
// buffer allocated once for that batch): they stay valid as long as the
// caller keeps the input unchanged, and they must be copied before the
// input is reused. Their capacity is clipped, so appending to them never
// overwrites a neighbour.
package record
