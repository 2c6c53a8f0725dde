package gate

import (
	"bytes"
	"encoding/base64"
	"io"
	"sync"
)

// Scrubber blanks the exact bytes of a credential the gateway holds for a
// target wherever the target's answer carries them: an upstream that
// echoes its request, a script that prints its config, an error that
// quotes its input would otherwise hand the agent the very secret the
// gateway exists to keep. It runs whether or not a plugin masks anything.
//
// Each matched byte becomes '*', so lengths never change (a streamed
// body keeps its Content-Length), and a match split across reads is
// still caught (ScrubReader).
type Scrubber struct {
	secrets [][]byte
	maxLen  int
}

// NewScrubber scrubs each of values in clear and in base64 (standard and
// URL alphabets, unpadded: a padded form is the unpadded one plus '=',
// which is not secret, and one form per alphabet keeps a streamed match
// the same as a whole one); encodedOnly in base64 only (HTTP basic's
// user:password, which in clear is no secret of its own). A value
// shorter than 4 bytes is left out: it would blank ordinary text and
// protect nothing.
func NewScrubber(values []string, encodedOnly ...string) *Scrubber {
	s := &Scrubber{}
	seen := map[string]bool{}
	add := func(v string) {
		if len(v) < 4 || seen[v] {
			return
		}
		seen[v] = true
		s.secrets = append(s.secrets, []byte(v))
		s.maxLen = max(s.maxLen, len(v))
	}
	encoded := func(v string) {
		add(base64.RawStdEncoding.EncodeToString([]byte(v)))
		add(base64.RawURLEncoding.EncodeToString([]byte(v)))
	}
	for _, v := range values {
		add(v)
		encoded(v)
	}
	for _, v := range encodedOnly {
		encoded(v)
	}
	return s
}

// Active reports whether s has anything to scrub (false for nil).
func (s *Scrubber) Active() bool { return s != nil && len(s.secrets) > 0 }

// Scrub blanks every secret in b, in place, and returns how many it found.
func (s *Scrubber) Scrub(b []byte) int {
	if !s.Active() {
		return 0
	}
	n := 0
	for _, sec := range s.secrets {
		for i := 0; ; {
			j := bytes.Index(b[i:], sec)
			if j < 0 {
				break
			}
			i += j
			for k := range sec {
				b[i+k] = '*'
			}
			i += len(sec)
			n++
		}
	}
	return n
}

// ScrubString is Scrub for a string (a header value).
func (s *Scrubber) ScrubString(v string) (string, int) {
	if !s.Active() {
		return v, 0
	}
	for _, sec := range s.secrets {
		if bytes.Contains([]byte(v), sec) {
			b := []byte(v)
			n := s.Scrub(b)
			return string(b), n
		}
	}
	return v, 0
}

// held is how many bytes at the end of b must wait for the next read:
// the longest tail that is a proper prefix of a secret.
func (s *Scrubber) held(b []byte) int {
	for k := min(s.maxLen-1, len(b)); k > 0; k-- {
		tail := b[len(b)-k:]
		for _, sec := range s.secrets {
			if len(sec) > k && bytes.HasPrefix(sec, tail) {
				return k
			}
		}
	}
	return 0
}

// Reader scrubs r as it streams, adding to *found the secrets it blanks.
func (s *Scrubber) Reader(r io.Reader, found *int) *ScrubReader {
	return &ScrubReader{s: s, r: r, found: found}
}

// ScrubReader is a stream with the secrets blanked. It holds back only a
// tail that could be the start of a secret, so a stream that pauses
// (server-sent events, an interactive command) is not delayed unless its
// last bytes look like a credential.
type ScrubReader struct {
	s     *Scrubber
	r     io.Reader
	buf   []byte // scrubbed; buf[:ready] may go out, the rest waits
	ready int
	err   error
	found *int
}

func (z *ScrubReader) Read(p []byte) (int, error) {
	for z.ready == 0 {
		if z.err != nil {
			return 0, z.err
		}
		switch {
		case z.buf == nil:
			z.buf = (*scrubBufs.Get().(*[]byte))[:0]
		case len(z.buf) == cap(z.buf):
			z.buf = append(z.buf, make([]byte, scrubBufSize)...)[:len(z.buf)]
		}
		n, err := z.r.Read(z.buf[len(z.buf):cap(z.buf)])
		z.buf = z.buf[:len(z.buf)+n]
		z.err = err
		*z.found += z.s.Scrub(z.buf)
		z.ready = len(z.buf)
		if err == nil {
			z.ready -= z.s.held(z.buf)
		}
	}
	n := copy(p, z.buf[:z.ready])
	z.ready -= n
	// Keep the unsent bytes at the front; they are few (a held tail) or
	// the rest of this read.
	z.buf = z.buf[:copy(z.buf, z.buf[n:])]
	return n, nil
}

// Close returns the buffer to the pool (a fresh 32 KiB per response body
// was most of what the gateway allocated under load, docs/SOAK.md) and
// closes the stream if it can be closed.
func (z *ScrubReader) Close() error {
	if b := z.buf; cap(b) == scrubBufSize {
		z.buf = nil
		b = b[:0]
		scrubBufs.Put(&b)
	}
	if c, ok := z.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

const scrubBufSize = 32 << 10

var scrubBufs = sync.Pool{New: func() any { b := make([]byte, 0, scrubBufSize); return &b }}
