package detect

// MaxHold bounds the bytes a Stream holds back (received but not yet
// returned). The builtins need far less: a span or candidate that may still
// grow is at most a few hundred bytes (a JWT up to 4 KiB), except a PEM
// private key, held from "-----BEGIN" until its END line or until MaxHold
// bytes have arrived (then its first MaxHold bytes are masked, see
// pem_private_key). Only overlapping spans of different kinds chained over
// more than MaxHold bytes can reach the bound; the Stream then cuts the
// chained span and masks both fragments entirely (never revealing a byte),
// which is the one case where its output differs from Mask over the whole
// text.
const MaxHold = 16 << 10

// Stream masks a byte stream chunk by chunk. Its output, concatenated over
// all Write calls and the final Flush, equals Mask over the whole stream with
// the same Set, whatever the chunk boundaries, for the builtin detectors (see
// Pattern for regexps).
//
// It keeps the bytes that a span might still cover (held back, at most
// MaxHold) plus a little already-emitted left context for detectors that look
// back from a span (a "password=" key, an "aws" hint: under 100 bytes).
// A Stream is not safe for concurrent use.
type Stream struct {
	set   *Set
	st    Strategy
	key   []byte
	buf   []byte // stream bytes [base, base+len(buf))
	base  int
	emit  int  // stream bytes before emit have been returned
	carry Span // stream offsets: rest of a span cut by the MaxHold bound
	raw   []Span
	out   []byte
	// Rescanning a large held-back region (an open PEM block) on every
	// small chunk would be quadratic: after a scan that left more than
	// lazyHeld bytes held, wait for held/8 new bytes before scanning again.
	// This changes when bytes are returned, never what is returned.
	lastHeld, fresh int
	memo            *Memo    // windows the gitleaks rules have decided
	masked          []string // kinds of the spans masked since TakeMasked
}

// TakeMasked returns the kinds of the spans masked in what Write and
// Flush returned since the last call (a span cut by MaxHold counts once
// per piece), and forgets them. The slice is reused by the next Write.
func (s *Stream) TakeMasked() []string {
	k := s.masked
	s.masked = s.masked[:0]
	return k
}

const lazyHeld = 4 << 10

// earlyChunk: after a chunk this small the stream may be interactive and
// the next bytes slow to come, so detectors that can decide a pending
// candidate early, at some cost, are asked to (Rules); after a larger one
// more is likely on its way and they wait for it. Either way the output
// is the same; only when bytes are returned changes.
const earlyChunk = 512

// NewStream returns a Stream masking with set, st and key (see Mask).
func NewStream(set *Set, st Strategy, key []byte) *Stream {
	return &Stream{set: set, st: st, key: key}
}

// Write adds chunk to the stream and returns the masked bytes that are now
// final. The returned slice is reused by the next call to Write or Flush.
func (s *Stream) Write(chunk []byte) []byte {
	s.buf = append(s.buf, chunk...)
	s.fresh += len(chunk)
	if s.lastHeld > lazyHeld && s.fresh < s.lastHeld/8 && s.Held() <= MaxHold {
		return s.out[:0]
	}
	return s.advance(false)
}

// Flush ends the stream and returns the rest of it, masked. The Stream may
// then be reused for a new stream.
func (s *Stream) Flush() []byte {
	out := s.advance(true)
	s.buf, s.base, s.emit, s.carry, s.lastHeld, s.fresh = s.buf[:0], 0, 0, Span{}, 0, 0
	s.memo = nil
	return out
}

// Held reports how many bytes were received and not yet returned.
func (s *Stream) Held() int { return s.base + len(s.buf) - s.emit }

func (s *Stream) advance(eof bool) []byte {
	b := s.buf
	er := s.emit - s.base
	if s.memo == nil {
		s.memo = NewMemo()
	}
	raw, hold := s.set.scan(b, s.raw[:0], eof, s.base > 0, er, s.fresh < earlyChunk, s.memo, s.base)
	// Spans before er were decided (and emitted) by an earlier call.
	k := 0
	for _, sp := range raw {
		if sp.Start >= er {
			raw[k] = sp
			k++
		}
	}
	raw = raw[:k]
	fragHead := s.carry.End > s.emit
	if fragHead {
		raw = append(raw, Span{er, s.carry.End - s.base, s.carry.Kind})
	}
	spans := mergeSpans(raw, 0, len(b))
	s.raw = spans[:0]

	c := len(b)
	if !eof {
		c = max(hold, er)
	}
	for _, sp := range spans {
		if sp.Start < c && sp.End > c {
			c = sp.Start
			break
		}
	}
	fragTail := false
	if !eof && len(b)-c > MaxHold {
		c = len(b) - MaxHold
		for _, sp := range spans {
			if sp.Start < c && sp.End > c {
				fragTail = true
				s.carry = Span{c + s.base, sp.End + s.base, sp.Kind}
				break
			}
		}
	}
	// Spans inside [er, c), shifted to the emitted piece.
	k = 0
	for _, sp := range spans {
		if sp.Start >= c {
			break
		}
		spans[k] = Span{sp.Start - er, min(sp.End, c) - er, sp.Kind}
		k++
	}
	fragHead = fragHead && k > 0 && spans[0].Start == 0
	s.out = maskSpans(s.out[:0], b[er:c], spans[:k], s.st, s.key, fragHead, fragTail)
	for _, sp := range spans[:k] {
		s.masked = append(s.masked, sp.Kind)
	}
	s.emit = s.base + c

	if drop := c - s.set.back; drop > 0 {
		n := copy(b, b[drop:])
		s.buf = b[:n]
		s.base += drop
	}
	s.lastHeld, s.fresh = s.Held(), 0
	return s.out
}
