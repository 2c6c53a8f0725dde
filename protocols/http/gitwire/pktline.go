// Package gitwire parses and writes the parts of Git's smart HTTP wire
// protocol the gateway reasons about: pkt-lines, upload-pack requests
// (protocol v0 want/have and protocol v2 ls-refs/fetch), receive-pack
// command lists with their capabilities and push options, ref
// advertisements, and report-status (v1 and v2) inside side-band-64k.
// It also reads the objects of a pushed pack (pack.go) for the secret
// scan and the force-push check.
//
// Every parser bounds what it reads: a pkt-line is at most MaxPktLen
// bytes, and a request or command list at most the caller's limit. Input
// is the agent's and may be hostile; errors say what was wrong, never
// panic.
package gitwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MaxPktLen is the largest pkt-line, length prefix included (Git's
// LARGE_PACKET_MAX).
const MaxPktLen = 65520

// MaxPktData is the largest payload of one pkt-line.
const MaxPktData = MaxPktLen - 4

// PktType is what a pkt-line is: data, or one of the special packets.
type PktType int

const (
	PktData        PktType = iota
	PktFlush               // 0000
	PktDelim               // 0001 (protocol v2)
	PktResponseEnd         // 0002 (protocol v2)
)

// ErrMalformed marks input that is not valid pkt-line framing or not a
// valid request; errors.Is tells a client's bad input from an I/O error.
var ErrMalformed = errors.New("malformed pkt-line")

// PktReader reads pkt-lines from a stream.
type PktReader struct {
	r   *bufio.Reader
	buf [MaxPktLen]byte
	n   int64 // bytes read so far
}

// NewPktReader reads pkt-lines from r (buffered unless r is a *bufio.Reader).
func NewPktReader(r io.Reader) *PktReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &PktReader{r: br}
}

// Buffered is the reader under the pkt-lines, positioned right after the
// last one read: what follows the command list of a push is the pack.
func (p *PktReader) Buffered() *bufio.Reader { return p.r }

// Consumed is how many bytes the pkt-lines read so far took.
func (p *PktReader) Consumed() int64 { return p.n }

// Next reads one pkt-line. The payload is valid until the next call. At
// the end of the stream before any byte of a packet it returns io.EOF;
// a packet cut short is io.ErrUnexpectedEOF.
func (p *PktReader) Next() (PktType, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(p.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := 0
	for _, c := range hdr {
		v, ok := unhex(c)
		if !ok {
			return 0, nil, fmt.Errorf("%w: length %q is not 4 hex digits", ErrMalformed, printable(hdr[:]))
		}
		n = n<<4 | v
	}
	p.n += 4
	switch {
	case n == 0:
		return PktFlush, nil, nil
	case n == 1:
		return PktDelim, nil, nil
	case n == 2:
		return PktResponseEnd, nil, nil
	case n < 4:
		return 0, nil, fmt.Errorf("%w: length %d is reserved", ErrMalformed, n)
	case n > MaxPktLen:
		return 0, nil, fmt.Errorf("%w: length %d is over the maximum %d", ErrMalformed, n, MaxPktLen)
	}
	b := p.buf[:n-4]
	if _, err := io.ReadFull(p.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	p.n += int64(len(b))
	return PktData, b, nil
}

func unhex(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// printable is b with bytes outside printable ASCII as '?', for errors.
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

// AppendPkt appends data as one pkt-line; data over MaxPktData is an
// error (split it first).
func AppendPkt(dst, data []byte) ([]byte, error) {
	if len(data) > MaxPktData {
		return dst, fmt.Errorf("gitwire: pkt-line payload of %d bytes is over %d", len(data), MaxPktData)
	}
	dst = fmt.Appendf(dst, "%04x", len(data)+4)
	return append(dst, data...), nil
}

// AppendFlush appends a flush packet.
func AppendFlush(dst []byte) []byte { return append(dst, "0000"...) }

// AppendError appends an "ERR <msg>" packet, which git prints as
// "remote error: <msg>" and stops.
func AppendError(dst []byte, msg string) []byte {
	msg = oneLine(msg, MaxPktData-5)
	b, _ := AppendPkt(dst, []byte("ERR "+msg+"\n"))
	return b
}

// oneLine makes s fit one pkt-line of at most max bytes: no newline, no
// NUL, cut with "..." when longer.
func oneLine(s string, max int) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' || c == 0 {
			b[i] = ' '
		}
	}
	if len(b) > max {
		b = append(b[:max-3], "..."...)
	}
	return string(b)
}

// trimLF drops one trailing newline, which pkt-line payloads usually carry.
func trimLF(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		return b[:len(b)-1]
	}
	return b
}
