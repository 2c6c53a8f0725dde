package ssh

import (
	"bytes"
	"encoding/binary"
	"math"
)

// Masking of file contents read over sftp (a target with sftp_mask =
// true). Each READ the client sends goes upstream widened by
// sftpMaskWindow bytes on both sides (read-ahead), the widened data
// passes the chain as one whole stream (eos in the same event), and the
// client gets exactly the bytes it asked for, with every byte the chain
// changed overwritten by '*'. So a reply keeps its length and offsets
// stay true whatever the strategy does to lengths, and each reply is
// checked on its own: parallel and out-of-order reads need no state
// between replies, and a secret shorter than the window that crosses a
// reply boundary lies whole in the widened read of both replies.

// sftpMaskWindow is the read-ahead on each side of a read: longer than
// the secrets the detectors find (a PEM RSA-4096 key is about 3.3 KiB)
// plus the left context they look back at.
const sftpMaskWindow = 8 << 10

// sftpMaxRead bounds a widened read: OpenSSH's sftp-server answers at
// most 256 KiB minus 1 KiB anyway, and a shorter answer is trimmed.
const sftpMaxRead = 255 << 10

// sftpWiden returns the upstream read for a client read of n bytes at
// off: it starts at most sftpMaskWindow before off and reaches up to
// sftpMaskWindow past off+n.
func sftpWiden(off uint64, n uint32) (start uint64, length uint32) {
	start = off - min(off, sftpMaskWindow)
	want := uint64(off-start) + uint64(n) + sftpMaskWindow
	return start, uint32(min(want, sftpMaxRead))
}

// sftpTrim says which bytes of a widened answer (data read at start,
// asked for asked bytes) the client gets for its read of n bytes at
// off: [from, to) in data. A byte is given only with sftpMaskWindow
// bytes checked after it, unless the answer was short and ends within
// the window after off: that is the end of the file (sftp-server reads
// a regular file short only there), and the rest of it is given. A
// short answer that ends later is trimmed, and the client, which takes
// short reads, asks again for the rest. ok false: nothing to give (the
// file ends before off), the client gets EOF.
func sftpTrim(off uint64, n uint32, start uint64, asked uint32, got int) (from, to int, ok bool) {
	// Offsets near 2^64 saturate rather than wrap (a hostile server).
	end, want := start+uint64(got), off+uint64(n)
	if end < start {
		end = math.MaxUint64
	}
	if want < off {
		want = math.MaxUint64
	}
	if end <= off || off < start {
		return 0, 0, false
	}
	stop := min(want, end)
	if got >= int(asked) || end-off > sftpMaskWindow {
		// A full answer, or a short one that ends further on (the
		// server's own bound): end-sftpMaskWindow is past off.
		stop = max(off, min(stop, end-sftpMaskWindow))
	}
	return int(off - start), int(stop - start), true
}

// minAnchor is the shortest run of bytes taken as unchanged between two
// changes: a shorter run that matches could be a piece of the secret
// that happens to equal a piece of the replacement ("[REDACTED:...]",
// a hash's hex digits), so it is masked with its neighbours.
const minAnchor = 16

// narrowSkip is how far past a change the first search for the text
// after it looks (secrets are mostly far shorter); then the whole rest.
const narrowSkip = 1 << 10

// sftpChanged returns the ranges of orig that the chain changed, given
// masked, orig with some spans replaced by text of any length. It walks
// both from the start: equal bytes are kept; at a difference the next
// anchor is the first run of minAnchor bytes of masked (or masked's
// tail, against orig's tail) that orig holds further on, and orig's
// bytes up to it are changed. Every byte outside the ranges lies in the
// common prefix or suffix or in a run of at least minAnchor bytes that
// masked holds at the aligned place, so a wrong anchor masks too much,
// never too little. Work is bounded: past the budget the rest up to the
// common suffix is changed.
func sftpChanged(orig, masked []byte) [][2]int {
	var out [][2]int
	budget := 64*len(orig) + 4<<20
	i, j := 0, 0
	for {
		for i < len(orig) && j < len(masked) && orig[i] == masked[j] {
			i++
			j++
		}
		if i == len(orig) && j == len(masked) {
			return out
		}
		ai, aj, found := -1, -1, false
		// First near (replacement and secret both short), then anywhere.
		for _, limit := range []int{narrowSkip, max(len(orig), len(masked))} {
			for jj := j; jj <= min(len(masked), j+limit) && budget > 0 && !found; jj++ {
				if jj+minAnchor > len(masked) {
					// Masked's tail, shorter than an anchor, must end orig.
					t := len(masked) - jj
					budget -= t + 1
					if len(orig)-t >= i && bytes.Equal(orig[len(orig)-t:], masked[jj:]) {
						ai, aj, found = len(orig)-t, jj, true
					}
					continue
				}
				win := orig[i:min(len(orig), i+limit+minAnchor)]
				budget -= len(win) + 1
				if k := bytes.Index(win, masked[jj:jj+minAnchor]); k >= 0 {
					ai, aj, found = i+k, jj, true
				}
			}
			if found || budget <= 0 {
				break
			}
		}
		if !found {
			// Out of budget: everything to the common suffix.
			s := 0
			for s < len(orig)-i && s < len(masked)-j && orig[len(orig)-1-s] == masked[len(masked)-1-s] {
				s++
			}
			return append(out, [2]int{i, len(orig) - s})
		}
		if ai > i {
			out = append(out, [2]int{i, ai})
		}
		i, j = ai, aj
	}
}

// sftpOverwrite overwrites the changed ranges of b with '*', in place.
func sftpOverwrite(b []byte, changed [][2]int) []byte {
	for _, r := range changed {
		for k := r[0]; k < r[1]; k++ {
			b[k] = '*'
		}
	}
	return b
}

// sftpDataPacket is an SSH_FXP_DATA answer to request id.
func sftpDataPacket(id uint32, data []byte) []byte {
	p := make([]byte, 13, 13+len(data))
	binary.BigEndian.PutUint32(p, uint32(9+len(data)))
	p[4] = sftpData
	binary.BigEndian.PutUint32(p[5:], id)
	binary.BigEndian.PutUint32(p[9:], uint32(len(data)))
	return append(p, data...)
}

// SFTP status codes the gateway answers with.
const (
	sftpFxEOF     = 1
	sftpFxFailure = 4
)

// sftpStatusPacket is an SSH_FXP_STATUS answer to request id.
func sftpStatusPacket(id, code uint32, msg string) []byte {
	body := make([]byte, 0, 17+len(msg))
	body = append(body, sftpStatus)
	body = binary.BigEndian.AppendUint32(body, id)
	body = binary.BigEndian.AppendUint32(body, code)
	body = binary.BigEndian.AppendUint32(body, uint32(len(msg)))
	body = append(body, msg...)
	body = binary.BigEndian.AppendUint32(body, 0) // language tag
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// sftpReadPacket is an SSH_FXP_READ request.
func sftpReadPacket(id uint32, handle string, off uint64, n uint32) []byte {
	body := make([]byte, 0, 21+len(handle))
	body = append(body, sftpRead)
	body = binary.BigEndian.AppendUint32(body, id)
	body = binary.BigEndian.AppendUint32(body, uint32(len(handle)))
	body = append(body, handle...)
	body = binary.BigEndian.AppendUint64(body, off)
	body = binary.BigEndian.AppendUint32(body, n)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}
