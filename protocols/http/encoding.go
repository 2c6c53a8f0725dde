package http

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Why these decoders: the response chain must read what the agent will
// read, and a hostile upstream or agent can pick the encoding. klauspost's
// gzip, zlib and flate are faster than the standard library's on the same
// streams and its zstd is the Go decoder the ecosystem relies on (the
// standard library has none); brotli is the maintained pure-Go port. Both
// are already in the module graph through clickhouse-go.

// errUndecodable marks a Content-Encoding the gateway cannot decode: an
// unknown coding, or several stacked (the chain would need each layer
// peeled in order, and stacking has no honest use in a response).
var errUndecodable = errors.New("content encoding cannot be decoded")

// errTooLarge marks a body past the inspection cap once decoded.
var errTooLarge = errors.New("decoded body exceeds max_inspect_body_bytes")

// encoded reports the response's Content-Encoding, "" for identity.
func encoded(ce string) string {
	ce = strings.ToLower(strings.TrimSpace(ce))
	if ce == "identity" {
		return ""
	}
	return ce
}

// decodeBody reads r, encoded with ce, and returns the decoded bytes; at
// most limit decoded bytes are accepted, so a small bomb cannot make the
// gateway hold gigabytes.
func decodeBody(ce string, r io.Reader, limit int64) ([]byte, error) {
	var dec io.Reader
	switch ce {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		dec = zr
	case "deflate":
		// RFC 9110 deflate is zlib-wrapped; some servers send raw
		// deflate. The first two bytes tell them apart.
		br := bufio.NewReader(r)
		if h, err := br.Peek(2); err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, fmt.Errorf("deflate: %w", err)
			}
			defer zr.Close()
			dec = zr
		} else {
			fr := flate.NewReader(br)
			defer fr.Close()
			dec = fr
		}
	case "br":
		dec = brotli.NewReader(r)
	case "zstd":
		// A window cap: zstd frames may ask for up to 3.75 TB of window.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderMaxMemory(uint64(limit)+1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		dec = zr
	default:
		return nil, fmt.Errorf("%w: %q", errUndecodable, ce)
	}
	b, err := io.ReadAll(io.LimitReader(dec, limit+1))
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return nil, errTooLarge // zstd's own caps, from the frame header
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ce, err)
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}
