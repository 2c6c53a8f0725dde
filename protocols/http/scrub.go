package http

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"sync"

	"github.com/tollgate-dev/tollgate/host/config"
)

// scrubber blanks the exact bytes of the credential the gateway injects
// for a target wherever they come back: an upstream that echoes its
// request (a debug endpoint, an error page, a misconfigured proxy) would
// otherwise hand the agent the very secret the gateway exists to keep.
// It runs whether or not a mask plugin is configured.
//
// Each matched byte becomes '*', so lengths never change: a streamed body
// keeps its Content-Length, and a match split across reads is still
// caught (see scrubReader).
type scrubber struct {
	secrets [][]byte
	maxLen  int
}

// newScrubber lists the forms of cred that may come back: the raw secret,
// its base64 (standard and URL alphabets; padding is not secret), and for basic
// auth the base64 of user:password as it travels in the header.
func newScrubber(cred config.Credential) *scrubber {
	s := &scrubber{}
	var raw []string
	switch cred.Type {
	case "bearer":
		raw = append(raw, cred.Token.Value())
	case "basic":
		raw = append(raw, cred.Password.Value(), cred.Username+":"+cred.Password.Value())
	case "header":
		raw = append(raw, cred.Value.Value())
	}
	seen := map[string]bool{}
	add := func(v string) {
		// Shorter than 4 bytes, a "secret" would blank ordinary text and
		// protects nothing; validation of such credentials is the
		// operator's business.
		if len(v) < 4 || seen[v] {
			return
		}
		seen[v] = true
		s.secrets = append(s.secrets, []byte(v))
		s.maxLen = max(s.maxLen, len(v))
	}
	for i, r := range raw {
		if i == 0 || cred.Type != "basic" {
			add(r) // user:password in clear is not worth a match of its own
		}
		// Unpadded only: a padded form is the unpadded one plus '=',
		// which is not secret, and one form per alphabet keeps a streamed
		// match the same as a whole one.
		b := []byte(r)
		add(base64.RawStdEncoding.EncodeToString(b))
		add(base64.RawURLEncoding.EncodeToString(b))
	}
	return s
}

func (s *scrubber) active() bool { return s != nil && len(s.secrets) > 0 }

// scrub blanks every secret in b in place and returns how many it found.
func (s *scrubber) scrub(b []byte) int {
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

func (s *scrubber) scrubString(v string) (string, int) {
	if !s.active() {
		return v, 0
	}
	for _, sec := range s.secrets {
		if bytes.Contains([]byte(v), sec) {
			b := []byte(v)
			n := s.scrub(b)
			return string(b), n
		}
	}
	return v, 0
}

// scrubHeader blanks secrets in every value of h.
func (s *scrubber) scrubHeader(h http.Header) int {
	n := 0
	for _, vs := range h {
		for i, v := range vs {
			var c int
			vs[i], c = s.scrubString(v)
			n += c
		}
	}
	return n
}

// held is how many bytes at the end of b must wait for the next read:
// the longest tail that is a proper prefix of a secret.
func (s *scrubber) held(b []byte) int {
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

// scrubReader scrubs a body as it streams. It holds back only a tail that
// could be the start of a secret, so a stream that pauses (server-sent
// events) is not delayed unless its last bytes look like a credential.
type scrubReader struct {
	s     *scrubber
	r     io.ReadCloser
	buf   []byte // scrubbed; buf[:ready] may go out, the rest waits
	ready int
	err   error
	found *int
}

func (z *scrubReader) Read(p []byte) (int, error) {
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
		*z.found += z.s.scrub(z.buf)
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

// Close returns the buffer to the pool: a fresh 32 KiB per response body
// was most of what the gateway allocated under load (docs/SOAK.md).
func (z *scrubReader) Close() error {
	if b := z.buf; cap(b) == scrubBufSize {
		z.buf = nil
		b = b[:0]
		scrubBufs.Put(&b)
	}
	return z.r.Close()
}

const scrubBufSize = 32 << 10

var scrubBufs = sync.Pool{New: func() any { b := make([]byte, 0, scrubBufSize); return &b }}
