package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// On-disk format (version 1). All integers are little-endian.
//
// The spool is a directory holding:
//
//	00000000000000000001.seg   segment files, named by a 20-digit zero-padded
//	00000000000000000002.seg   sequence number (uint64), oldest first
//	ACK                        the acknowledged position (absent: nothing acked)
//	LOCK                       flock(2)ed while a process has the spool open
//
// A segment file is a 20-byte header followed by records:
//
//	header:  magic "TGSP" (4) | version uint16 = 1 | reserved uint16 = 0 |
//	         sequence uint64 (must equal the file name) |
//	         CRC-32C of the preceding 16 bytes (4)
//	record:  length uint32 (payload bytes, at most MaxRecord) |
//	         CRC-32C (Castagnoli) of the 4 length bytes followed by the payload (4) |
//	         payload (length bytes)
//
// Records are only appended, each batch with one write(2); a segment is
// never rewritten except that Open may cut a torn tail off the last one. A
// Pos names a record by its segment sequence and the byte offset of its
// record header in that file, so positions are stable across restarts.
//
// Because the checksum covers the length, a zero-filled tail (which a file
// system may leave after a power loss) never decodes as a record: the
// CRC-32C of four zero bytes is not zero. A decoder trusts a length only
// after checking it against MaxRecord and against the bytes that remain in
// the file, so a damaged length can never make it allocate more than the
// file holds (and never more than MaxRecord).
//
// The ACK file is 28 bytes: magic "TGAK" (4) | version uint32 = 1 |
// segment uint64 | offset int64 | CRC-32C of the preceding 24 bytes (4).
// It holds the acknowledgement cursor: the end of the last acknowledged
// record. It is replaced atomically (write ACK.tmp, fsync, rename, fsync dir).
const (
	segMagic      = "TGSP"
	segVersion    = 1
	segHeaderSize = 20
	recHeaderSize = 8

	ackMagic   = "TGAK"
	ackVersion = 1
	ackSize    = 28

	// MaxRecord is the largest payload Append accepts (16 MiB).
	MaxRecord = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func segName(seq uint64) string { return fmt.Sprintf("%020d.seg", seq) }

// parseSegName returns the sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	if len(name) != 24 || name[20:] != ".seg" {
		return 0, false
	}
	var n uint64
	for _, c := range name[:20] {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func encodeSegHeader(seq uint64) []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.LittleEndian.PutUint16(b[4:], segVersion)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	return b
}

// checkSegHeader reports why b is not a valid header for segment seq.
func checkSegHeader(b []byte, seq uint64) error {
	if len(b) < segHeaderSize {
		return errors.New("short header")
	}
	if string(b[:4]) != segMagic {
		return errors.New("bad magic")
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		return errors.New("header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != segVersion {
		return fmt.Errorf("unsupported version %d", v)
	}
	if got := binary.LittleEndian.Uint64(b[8:]); got != seq {
		return fmt.Errorf("header names segment %d", got)
	}
	return nil
}

// appendRecord appends the framed record for payload to dst.
func appendRecord(dst, payload []byte) []byte {
	var h [recHeaderSize]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(len(payload)))
	c := crc32.Update(0, castagnoli, h[:4])
	c = crc32.Update(c, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:], c)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

func recordCRC(lenField, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, lenField), castagnoli, payload)
}

// badRecord describes a record that failed to decode.
type badRecord struct {
	reason string
	// tail is true when the damage looks like an interrupted write: the
	// header is cut short, the length runs past the end of the data, or
	// the failing record ends exactly at the end of the data.
	tail bool
}

func (b *badRecord) Error() string { return b.reason }

// recordReader decodes records from r, which holds the bytes [off, end) of
// a segment file. It never allocates more than min(MaxRecord, end-off)
// for a payload.
type recordReader struct {
	r   *bufio.Reader
	off int64 // offset of the next record
	end int64
	buf []byte
}

// next returns the next record. It returns io.EOF at end, a *badRecord
// when the bytes at off are not a valid record, or an I/O error.
func (d *recordReader) next() (int64, []byte, error) {
	rem := d.end - d.off
	if rem == 0 {
		return 0, nil, io.EOF
	}
	if rem < recHeaderSize {
		return 0, nil, &badRecord{reason: fmt.Sprintf("%d stray bytes, shorter than a record header", rem), tail: true}
	}
	var h [recHeaderSize]byte
	if _, err := io.ReadFull(d.r, h[:]); err != nil {
		return 0, nil, noEOF(err)
	}
	n := int64(binary.LittleEndian.Uint32(h[:4]))
	if n > MaxRecord {
		return 0, nil, &badRecord{reason: fmt.Sprintf("length %d exceeds the %d-byte limit", n, MaxRecord), tail: true}
	}
	if n > rem-recHeaderSize {
		return 0, nil, &badRecord{reason: fmt.Sprintf("length %d runs past the end of the data (%d bytes left)", n, rem-recHeaderSize), tail: true}
	}
	if int64(cap(d.buf)) < n {
		// Doubled: records grow a few bytes at a time, and an exact fit
		// reallocated for most records of a walk.
		d.buf = make([]byte, max(n, 2*int64(cap(d.buf)), 1<<10))
	}
	p := d.buf[:n]
	if _, err := io.ReadFull(d.r, p); err != nil {
		return 0, nil, noEOF(err)
	}
	if recordCRC(h[:4], p) != binary.LittleEndian.Uint32(h[4:]) {
		return 0, nil, &badRecord{reason: "record checksum mismatch", tail: d.off+recHeaderSize+n == d.end}
	}
	at := d.off
	d.off += recHeaderSize + n
	return at, p, nil
}

// noEOF turns an EOF inside a region that stat said was there (the file
// shrank under us) into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func encodeAck(p Pos) []byte {
	b := make([]byte, ackSize)
	copy(b, ackMagic)
	binary.LittleEndian.PutUint32(b[4:], ackVersion)
	binary.LittleEndian.PutUint64(b[8:], p.Segment)
	binary.LittleEndian.PutUint64(b[16:], uint64(p.Offset))
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	return b
}

func decodeAck(b []byte) (Pos, error) {
	if len(b) != ackSize || string(b[:4]) != ackMagic {
		return Pos{}, errors.New("bad size or magic")
	}
	if crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		return Pos{}, errors.New("checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != ackVersion {
		return Pos{}, fmt.Errorf("unsupported version %d", v)
	}
	off := int64(binary.LittleEndian.Uint64(b[16:]))
	if off < 0 {
		return Pos{}, errors.New("negative offset")
	}
	return Pos{Segment: binary.LittleEndian.Uint64(b[8:]), Offset: off}, nil
}
