package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// The codecs keep their encoders and decoders in pools: building a gzip
// or lz4 state costs more than compressing a small batch. The zstd
// encoder and decoder are shared values whose EncodeAll/DecodeAll are safe
// for concurrent use; they start no goroutines.

// appendWriter is an io.Writer that appends to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

var (
	gzipWriters = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		return w
	}}
	gzipReaders sync.Pool // *gzip.Reader
	lz4Writers  = sync.Pool{New: func() any {
		// Kafka's Java client writes 64 KiB blocks; lz4's default is 4 MiB.
		w := lz4.NewWriter(nil)
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb))
		return w
	}}
	lz4Readers = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
	// scratch holds uncompressed records while a compressed batch is built.
	scratch = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error
)

func zstdCodec() (*zstd.Encoder, *zstd.Decoder, error) {
	zstdOnce.Do(func() {
		n := runtime.GOMAXPROCS(0)
		zstdEnc, zstdErr = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(n))
		if zstdErr != nil {
			return
		}
		zstdDec, zstdErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(n),
			zstd.WithDecoderMaxMemory(MaxDecompressedBytes),
			zstd.WithDecoderMaxWindow(MaxDecompressedBytes))
	})
	return zstdEnc, zstdDec, zstdErr
}

// compress appends src compressed with c to dst.
func compress(dst, src []byte, c Compression) ([]byte, error) {
	switch c {
	case Gzip:
		w := &appendWriter{b: dst}
		gz := gzipWriters.Get().(*gzip.Writer)
		gz.Reset(w)
		_, err := gz.Write(src)
		if cerr := gz.Close(); err == nil {
			err = cerr
		}
		gz.Reset(nil)
		gzipWriters.Put(gz)
		return w.b, err
	case Snappy:
		n := s2.MaxEncodedLen(len(src))
		if n < 0 {
			return dst, fmt.Errorf("%w: %d bytes for snappy", ErrTooLarge, len(src))
		}
		dst = grow(dst, n)
		enc := s2.EncodeSnappy(dst[len(dst):len(dst)+n], src)
		return dst[:len(dst)+len(enc)], nil
	case LZ4:
		w := &appendWriter{b: dst}
		lw := lz4Writers.Get().(*lz4.Writer)
		lw.Reset(w)
		_, err := lw.Write(src)
		if cerr := lw.Close(); err == nil {
			err = cerr
		}
		lw.Reset(nil)
		lz4Writers.Put(lw)
		return w.b, err
	case Zstd:
		enc, _, err := zstdCodec()
		if err != nil {
			return dst, err
		}
		return enc.EncodeAll(src, dst), nil
	}
	return dst, fmt.Errorf("%w: %d", ErrUnknownCompression, c)
}

// decompress returns src decompressed with c, in a buffer of its own. It
// refuses output above MaxDecompressedBytes.
func decompress(src []byte, c Compression) ([]byte, error) {
	switch c {
	case Gzip:
		gz, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if gz == nil {
			gz, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			err = gz.Reset(bytes.NewReader(src))
		}
		if err != nil {
			return nil, err
		}
		// The trailer holds the size mod 2^32; deflate cannot expand more
		// than 1032 times, which bounds a lying trailer.
		hint := 4 * len(src)
		if len(src) >= 18 {
			hint = min(int(binary.LittleEndian.Uint32(src[len(src)-4:])), 1032*len(src))
		}
		out, err := readAllLimit(gz, hint+1)
		gzipReaders.Put(gz)
		return out, err
	case Snappy:
		return decodeSnappy(src)
	case LZ4:
		lr := lz4Readers.Get().(*lz4.Reader)
		lr.Reset(bytes.NewReader(src))
		out, err := readAllLimit(lr, 4*len(src))
		lr.Reset(nil)
		lz4Readers.Put(lr)
		return out, err
	case Zstd:
		_, dec, err := zstdCodec()
		if err != nil {
			return nil, err
		}
		var h zstd.Header
		if err := h.Decode(src); err == nil && h.HasFCS && h.FrameContentSize > MaxDecompressedBytes {
			return nil, fmt.Errorf("%w: zstd frame of %d bytes", ErrTooLarge, h.FrameContentSize)
		}
		out, err := dec.DecodeAll(src, nil)
		if err == zstd.ErrDecoderSizeExceeded {
			return nil, fmt.Errorf("%w: zstd output over %d bytes", ErrTooLarge, MaxDecompressedBytes)
		}
		return out, err
	}
	return nil, fmt.Errorf("%w: %d", ErrUnknownCompression, c)
}

// readAllLimit reads r to its end, starting with a buffer of about hint
// bytes, and fails past MaxDecompressedBytes.
func readAllLimit(r io.Reader, hint int) ([]byte, error) {
	b := make([]byte, 0, min(max(hint, 512), MaxDecompressedBytes))
	for {
		if len(b) == cap(b) {
			if len(b) >= MaxDecompressedBytes {
				// One more byte would exceed the limit: probe for it.
				var one [1]byte
				if n, _ := io.ReadFull(r, one[:]); n > 0 {
					return nil, fmt.Errorf("%w: output over %d bytes", ErrTooLarge, MaxDecompressedBytes)
				}
				return b, nil
			}
			b = append(b, 0)[:len(b)]
			b = b[:len(b):min(cap(b), MaxDecompressedBytes)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// xerialHeader starts the framing that Java's snappy-java writes: the
// magic, then two 4-byte version words, then chunks of [4-byte length]
// [snappy block].
var xerialHeader = []byte{130, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// snappyLimit bounds a snappy block's announced size by what snappy can
// express: a copy of 64 bytes takes at least 3 bytes of input, so a block
// never expands more than about 22 times. A block announcing more is
// refused before anything is allocated.
func snappyLimit(compressed int) int {
	return min(MaxDecompressedBytes, 24*compressed+64)
}

func decodeSnappy(src []byte) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialHeader) {
		n, err := s2.DecodedLen(src)
		if err != nil {
			return nil, err
		}
		if n > snappyLimit(len(src)) {
			return nil, fmt.Errorf("%w: snappy block announces %d bytes from %d", ErrTooLarge, n, len(src))
		}
		return s2.Decode(make([]byte, n), src)
	}
	if len(src) < 16 {
		return nil, fmt.Errorf("%w: short xerial header", ErrCorrupt)
	}
	var out []byte
	for p := 16; p < len(src); {
		if len(src)-p < 4 {
			return nil, fmt.Errorf("%w: truncated xerial chunk length", ErrCorrupt)
		}
		size := int(binary.BigEndian.Uint32(src[p:]))
		p += 4
		if size > len(src)-p {
			return nil, fmt.Errorf("%w: xerial chunk of %d bytes overruns %d", ErrCorrupt, size, len(src)-p)
		}
		chunk := src[p : p+size]
		p += size
		n, err := s2.DecodedLen(chunk)
		if err != nil {
			return nil, err
		}
		if n > snappyLimit(size) || len(out)+n > MaxDecompressedBytes {
			return nil, fmt.Errorf("%w: snappy chunk announces %d bytes from %d", ErrTooLarge, n, size)
		}
		out = grow(out, n)
		if _, err := s2.Decode(out[len(out):len(out)+n], chunk); err != nil {
			return nil, err
		}
		out = out[:len(out)+n]
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// grow makes room for n more bytes after len(b).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+max(n, len(b)))
	copy(nb, b)
	return nb
}
