package http

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

func encodeWith(t testing.TB, ce string, s string) []byte {
	var b bytes.Buffer
	switch ce {
	case "gzip":
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
	case "deflate": // zlib-wrapped, as RFC 9110 says
		w := zlib.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
	case "raw-deflate":
		w, _ := flate.NewWriter(&b, flate.DefaultCompression)
		w.Write([]byte(s))
		w.Close()
	case "br":
		w := brotli.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
	case "zstd":
		w, _ := zstd.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
	}
	return b.Bytes()
}

func TestDecodeBody(t *testing.T) {
	body := strings.Repeat(`{"email":"dana@example.com"}`, 100)
	for _, ce := range []string{"gzip", "deflate", "raw-deflate", "br", "zstd"} {
		name := ce
		if ce == "raw-deflate" {
			name = "deflate"
		}
		got, err := decodeBody(name, bytes.NewReader(encodeWith(t, ce, body)), 1<<20)
		if err != nil || string(got) != body {
			t.Errorf("%s: %d bytes, %v", ce, len(got), err)
		}
		if _, err := decodeBody(name, bytes.NewReader(encodeWith(t, ce, body)), 100); !errors.Is(err, errTooLarge) {
			t.Errorf("%s over the cap: %v, want errTooLarge", ce, err)
		}
	}
	for _, ce := range []string{"gzip, gzip", "compress", "x-rot13"} {
		if _, err := decodeBody(ce, strings.NewReader("x"), 1<<20); !errors.Is(err, errUndecodable) {
			t.Errorf("%q: %v, want errUndecodable", ce, err)
		}
	}
	if _, err := decodeBody("gzip", strings.NewReader("not gzip at all"), 1<<20); err == nil {
		t.Error("garbage decoded as gzip")
	}
}

// FuzzDecodeBody: no input makes a decoder panic or return more than the cap.
func FuzzDecodeBody(f *testing.F) {
	for _, ce := range []string{"gzip", "deflate", "br", "zstd"} {
		f.Add(ce, encodeWith(f, ce, "hello hello hello"))
	}
	f.Fuzz(func(t *testing.T, ce string, in []byte) {
		b, err := decodeBody(ce, bytes.NewReader(in), 4096)
		if err == nil && len(b) > 4096 {
			t.Fatalf("%d bytes past the cap", len(b))
		}
	})
}
