package chserver

import (
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/andybalholm/brotli"
	"github.com/go-faster/city"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// ClickHouse's own block compression ("compress=1"/"decompress=1" on the
// HTTP interface, the one clickhouse-go uses for lz4 and zstd): a sequence of
// frames, each a 16-byte CityHash128 of the rest, a method byte, the
// compressed size including the 9-byte header, the uncompressed size, and
// the payload.
const (
	frameChecksum = 16
	frameHeader   = frameChecksum + 1 + 4 + 4
	// clickhouse-go compresses a whole batch as one frame, so frames are as
	// large as batches. ClickHouse itself allows up to 1 GiB.
	maxFrameSize = 1 << 30

	methodNone = 0x02
	methodLZ4  = 0x82
	methodZSTD = 0x90
)

// frameReader decodes ClickHouse-compressed frames.
type frameReader struct {
	r    io.Reader
	hdr  [frameHeader]byte
	raw  []byte
	data []byte
	pos  int
	zstd *zstd.Decoder
}

func newFrameReader(r io.Reader) *frameReader { return &frameReader{r: r} }

func (f *frameReader) Read(p []byte) (int, error) {
	for f.pos >= len(f.data) {
		if err := f.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.data[f.pos:])
	f.pos += n
	return n, nil
}

func (f *frameReader) next() error {
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return newException(codeCannotReadAllData, "truncated compressed block header")
		}
		return err // io.EOF between frames is the normal end
	}
	method := f.hdr[frameChecksum]
	size := int64(binary.LittleEndian.Uint32(f.hdr[frameChecksum+1:]))
	dataSize := int64(binary.LittleEndian.Uint32(f.hdr[frameChecksum+5:]))
	if size < 9 || size > maxFrameSize || dataSize > maxFrameSize {
		return newException(codeCannotDecompress, "compressed block size %d/%d out of range", size, dataSize)
	}
	need := frameChecksum + int(size)
	if cap(f.raw) < need {
		f.raw = make([]byte, need)
	}
	f.raw = f.raw[:need]
	copy(f.raw, f.hdr[:])
	if _, err := io.ReadFull(f.r, f.raw[frameHeader:]); err != nil {
		return newException(codeCannotReadAllData, "truncated compressed block: %v", err)
	}
	sum := city.CH128(f.raw[frameChecksum:])
	if sum.Low != binary.LittleEndian.Uint64(f.raw[0:8]) || sum.High != binary.LittleEndian.Uint64(f.raw[8:16]) {
		return newException(codeCannotDecompress, "checksum mismatch in compressed block")
	}
	payload := f.raw[frameHeader:]
	if cap(f.data) < int(dataSize) {
		f.data = make([]byte, dataSize)
	}
	f.data = f.data[:dataSize]
	f.pos = 0
	switch method {
	case methodNone:
		if len(payload) != int(dataSize) {
			return newException(codeCannotDecompress, "uncompressed block size mismatch")
		}
		copy(f.data, payload)
	case methodLZ4:
		n, err := lz4.UncompressBlock(payload, f.data)
		if err != nil || n != int(dataSize) {
			return newException(codeCannotDecompress, "lz4 block: %v", err)
		}
	case methodZSTD:
		if f.zstd == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxFrameSize))
			if err != nil {
				return err
			}
			f.zstd = d
		}
		out, err := f.zstd.DecodeAll(payload, f.data[:0])
		if err != nil || len(out) != int(dataSize) {
			return newException(codeCannotDecompress, "zstd block: %v", err)
		}
		f.data = out
	default:
		return newException(codeCannotDecompress, "unknown compression method 0x%02x", method)
	}
	return nil
}

func (f *frameReader) Close() {
	if f.zstd != nil {
		f.zstd.Close()
	}
}

// frameWriter writes each Write as one ClickHouse-compressed frame.
type frameWriter struct {
	w io.Writer
	c *compress.Writer
}

func newFrameWriter(w io.Writer, method string) (*frameWriter, error) {
	m := compress.LZ4
	switch strings.ToUpper(method) {
	case "", "LZ4":
	case "ZSTD":
		m = compress.ZSTD
	case "NONE":
		m = compress.None
	default:
		return nil, newException(codeBadArguments, "unsupported network_compression_method %q", method)
	}
	return &frameWriter{w: w, c: compress.NewWriter(compress.LevelZero, m)}, nil
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.c.Compress(p); err != nil {
		return 0, err
	}
	if _, err := f.w.Write(f.c.Data); err != nil {
		return 0, err
	}
	return len(p), nil
}

// decodeBody undoes an HTTP Content-Encoding on a request body.
func decodeBody(enc string, r io.Reader) (io.Reader, func(), error) {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "", "identity", "none":
		return r, func() {}, nil
	case "gzip", "x-gzip":
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, newException(codeCannotDecompress, "gzip body: %v", err)
		}
		return g, func() { g.Close() }, nil
	case "deflate":
		// HTTP's "deflate" is zlib-wrapped (RFC 9110), as clickhouse-go and
		// ClickHouse use it.
		z, err := zlib.NewReader(r)
		if err != nil {
			return nil, nil, newException(codeCannotDecompress, "deflate body: %v", err)
		}
		return z, func() { z.Close() }, nil
	case "br":
		return brotli.NewReader(r), func() {}, nil
	case "zstd":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return d, d.Close, nil
	case "lz4":
		return lz4.NewReader(r), func() {}, nil
	}
	return nil, nil, newException(codeBadArguments, "unsupported Content-Encoding %q", enc)
}

// responseEncoding picks the first Accept-Encoding we can produce.
func responseEncoding(accept string) string {
	for _, part := range strings.Split(accept, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch e := strings.ToLower(strings.TrimSpace(name)); e {
		case "gzip", "deflate", "br", "zstd":
			return e
		}
	}
	return ""
}

// encodeBody wraps w in the named Content-Encoding.
func encodeBody(enc string, w io.Writer) (io.WriteCloser, error) {
	switch enc {
	case "gzip":
		return gzip.NewWriterLevel(w, gzip.BestSpeed)
	case "deflate":
		return zlib.NewWriterLevel(w, flate.BestSpeed)
	case "br":
		return brotli.NewWriterLevel(w, brotli.BestSpeed), nil
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	}
	return nil, fmt.Errorf("unsupported encoding %q", enc)
}
