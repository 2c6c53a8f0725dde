package ssh

import (
	"bytes"
	"encoding/base64"
	"io"
)

// scrubber blanks the target's password wherever the target's output
// carries it (a script that prints its config, an error that echoes its
// input): the agent must never read the credential the gateway holds. A
// key never leaves the gateway, so only passwords are scrubbed. Each
// matched byte becomes '*', raw and in base64 (both alphabets, unpadded).
//
// protocols/http has the same idea for injected HTTP credentials; the two
// should share one home in the layer once both are stable.
type scrubber struct {
	secrets [][]byte
	maxLen  int
}

func newScrubber(values ...string) *scrubber {
	s := &scrubber{}
	seen := map[string]bool{}
	add := func(v string) {
		if len(v) < 4 || seen[v] { // shorter would blank ordinary text
			return
		}
		seen[v] = true
		s.secrets = append(s.secrets, []byte(v))
		s.maxLen = max(s.maxLen, len(v))
	}
	for _, v := range values {
		add(v)
		add(base64.RawStdEncoding.EncodeToString([]byte(v)))
		add(base64.RawURLEncoding.EncodeToString([]byte(v)))
	}
	return s
}

func (s *scrubber) active() bool { return s != nil && len(s.secrets) > 0 }

// scrub blanks every secret in b, in place, and says how many it found.
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

// held is the length of the longest tail of b that could begin a secret.
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

// scrubReader scrubs a stream: it holds back only a tail that could be
// the start of a secret, until the next read or the end.
type scrubReader struct {
	s     *scrubber
	r     io.Reader
	buf   []byte // scrubbed; buf[:ready] may go out
	ready int
	err   error
	found int
}

func (z *scrubReader) Read(p []byte) (int, error) {
	for z.ready == 0 {
		if z.err != nil {
			return 0, z.err
		}
		if len(z.buf) == cap(z.buf) {
			z.buf = append(z.buf, make([]byte, chunkSize)...)[:len(z.buf)]
		}
		n, err := z.r.Read(z.buf[len(z.buf):cap(z.buf)])
		z.buf = z.buf[:len(z.buf)+n]
		z.err = err
		z.found += z.s.scrub(z.buf)
		if err != nil {
			z.ready = len(z.buf)
		} else {
			z.ready = len(z.buf) - z.s.held(z.buf)
		}
	}
	n := copy(p, z.buf[:z.ready])
	z.buf = z.buf[:copy(z.buf, z.buf[n:])]
	z.ready -= n
	return n, nil
}

// count is how many secrets z blanked (0 for nil).
func (z *scrubReader) count() int {
	if z == nil {
		return 0
	}
	return z.found
}
