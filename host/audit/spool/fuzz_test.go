package spool

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// realSegment returns the bytes of a segment file written by the spool.
func realSegment(t testing.TB, sizes ...int) []byte {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Sync: SyncNever, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		if _, err := s.Append(payload(i)[:min(n, len(payload(i)))]); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	b, err := os.ReadFile(filepath.Join(dir, segName(1)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecode feeds arbitrary bytes to Open as the only segment file (and,
// when the input is long enough, its tail as an ACK file): Open and Replay
// must not fail or panic, must not allocate beyond the file, and every
// replayed payload must be a record whose checksum holds at its position.
// Appending afterwards must work and be replayed.
func FuzzDecode(f *testing.F) {
	f.Add(realSegment(f))
	f.Add(realSegment(f, 0))
	f.Add(realSegment(f, 10, 0, 200, 50))
	seg := realSegment(f, 100, 100, 100)
	f.Add(seg[:len(seg)-7])
	f.Add(append(seg, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	big := realSegment(f, 30)
	binary.LittleEndian.PutUint32(big[segHeaderSize:], 0xFFFFFFF0)
	f.Add(big)
	f.Add([]byte("TGSP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, segName(1))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir, Sync: SyncNever, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		n := 0
		err = s.Replay(func(p Pos, b []byte) error {
			n++
			if p.Segment != 1 || p.Offset < segHeaderSize || p.Offset+recHeaderSize+int64(len(b)) > int64(len(data)) {
				return errors.New("position outside the input")
			}
			h := data[p.Offset : p.Offset+recHeaderSize]
			if int(binary.LittleEndian.Uint32(h)) != len(b) || recordCRC(h[:4], b) != binary.LittleEndian.Uint32(h[4:]) {
				return errors.New("replayed a record whose checksum does not hold")
			}
			if string(data[p.Offset+recHeaderSize:p.Offset+recHeaderSize+int64(len(b))]) != string(b) {
				return errors.New("payload differs from the file")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Pending != int64(n) {
			t.Fatalf("Pending %d, replayed %d", st.Pending, n)
		}
		p, err := s.Append([]byte("fuzz"))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		var got Pos
		s.Replay(func(q Pos, b []byte) error { got = q; return nil })
		if got != p {
			t.Fatalf("appended %v, last replayed %v", p, got)
		}
		if err := s.Ack(p); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	})
}

// TestDecodeNoHugeAlloc checks that a corrupt length near the limit in a
// small file does not allocate a record-sized buffer.
func TestDecodeNoHugeAlloc(t *testing.T) {
	seg := realSegment(t, 30)
	binary.LittleEndian.PutUint32(seg[segHeaderSize:], MaxRecord)
	d := &recordReader{off: segHeaderSize, end: int64(len(seg))}
	br := bufio.NewReader(nil)
	allocs := testing.AllocsPerRun(10, func() {
		br.Reset(bytes.NewReader(seg[segHeaderSize:]))
		d.r, d.off, d.buf = br, segHeaderSize, nil
		if _, _, err := d.next(); err == nil || err == io.EOF {
			t.Fatal("decoded a record past the end")
		}
	})
	if allocs > 20 || cap(d.buf) != 0 { // a few for the error message
		t.Fatalf("allocs %v, buffer %d", allocs, cap(d.buf))
	}
}
