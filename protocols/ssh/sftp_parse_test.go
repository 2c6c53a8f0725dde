package ssh

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
)

func sftpPkt(typ byte, fields ...any) []byte {
	var b bytes.Buffer
	b.WriteByte(typ)
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			binary.Write(&b, binary.BigEndian, v)
		case uint64:
			binary.Write(&b, binary.BigEndian, v)
		case string:
			binary.Write(&b, binary.BigEndian, uint32(len(v)))
			b.WriteString(v)
		}
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(b.Len()))
	return append(out, b.Bytes()...)
}

type sftpRow struct {
	op, path, to, status string
	read, written        int64
}

// The audit follows requests and answers by id and handle: an upload's
// bytes at its close, a failed open, a rename, a handle never closed; a
// short packet is an error, never a panic.
func TestSFTPAudit(t *testing.T) {
	var rows []sftpRow
	a := newSFTPAudit(func(op string, f sftpOp, file *sftpFile, status string) {
		rows = append(rows, sftpRow{sftpOperation(op, f.flags), f.path, f.to, status, file.read, file.written})
	})
	var client, server bytes.Buffer
	client.Write(sftpPkt(sftpInit, uint32(3)))
	client.Write(sftpPkt(sftpOpen, uint32(1), "/tmp/up", uint32(2|8|0x10), uint32(0)))
	server.Write(sftpPkt(sftpHandle, uint32(1), "h1"))
	client.Write(sftpPkt(sftpWrite, uint32(2), "h1", uint64(0), "hello"))
	client.Write(sftpPkt(sftpWrite, uint32(3), "h1", uint64(5), "world!"))
	server.Write(sftpPkt(sftpStatus, uint32(2), uint32(0), "", ""))
	server.Write(sftpPkt(sftpStatus, uint32(3), uint32(4), "failure", "")) // not counted
	client.Write(sftpPkt(sftpClose, uint32(4), "h1"))
	server.Write(sftpPkt(sftpStatus, uint32(4), uint32(0), "", ""))
	client.Write(sftpPkt(sftpOpen, uint32(5), "/etc/shadow", uint32(1), uint32(0)))
	server.Write(sftpPkt(sftpStatus, uint32(5), uint32(3), "Permission denied", ""))
	client.Write(sftpPkt(sftpExtended, uint32(6), "posix-rename@openssh.com", "/a", "/b"))
	server.Write(sftpPkt(sftpStatus, uint32(6), uint32(0), "", ""))
	client.Write(sftpPkt(sftpOpen, uint32(7), "/tmp/down", uint32(1), uint32(0)))
	server.Write(sftpPkt(sftpHandle, uint32(7), "h2"))
	client.Write(sftpPkt(sftpRead, uint32(8), "h2", uint64(0), uint32(100)))
	server.Write(sftpPkt(sftpData, uint32(8), "0123456789"))
	// Every request goes before its answer, as on the wire.
	for _, side := range []struct {
		b    *bytes.Buffer
		note func(sftpPacket) ([]byte, error)
	}{{&client, a.request}, {&server, a.response}} {
		r := bufio.NewReader(side.b)
		for {
			_, p, err := readSFTPPacket(r)
			if err != nil {
				break
			}
			if instead, err := side.note(p); err != nil || instead != nil {
				t.Fatal(instead, err)
			}
		}
	}
	a.end()
	want := []sftpRow{
		{"write", "/tmp/up", "", "ok", 0, 5},
		{"read", "/etc/shadow", "", "error 3: Permission denied", 0, 0},
		{"rename", "/a", "/b", "ok", 0, 0},
		{"read", "/tmp/down", "", "not closed", 10, 0},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, rows[i], want[i])
		}
	}
	if _, err := a.request(sftpPacket{typ: sftpOpen, body: []byte{0, 0, 0, 9, 0, 0, 0, 200, 'x'}}); err == nil {
		t.Error("a cut OPEN was accepted")
	}
}

// Any bytes, read as packets from either side, never panic, and the
// audit never holds more than its bounds.
func FuzzSFTPPackets(f *testing.F) {
	f.Add(append(sftpPkt(sftpOpen, uint32(1), "/x", uint32(2), uint32(0)), sftpPkt(sftpHandle, uint32(1), "h")...))
	f.Add(append(sftpPkt(sftpWrite, uint32(2), "h", uint64(0), "data"), sftpPkt(sftpStatus, uint32(2), uint32(0), "", "")...))
	f.Add(append(sftpPkt(sftpExtended, uint32(3), "posix-rename@openssh.com", "/a", "/b"), sftpPkt(sftpClose, uint32(4), "h")...))
	f.Add([]byte{0, 0, 0, 1, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(append(sftpPkt(sftpRead, uint32(5), "h", uint64(1<<64-3), uint32(1<<31)), sftpPkt(sftpData, uint32(5), "a SECRET here")...))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Without masking, and with (sftp_mask: reads widened, answers
		// trimmed and rebuilt), "SECRET" standing for what a plugin masks.
		for _, masking := range []bool{false, true} {
			a := newSFTPAudit(func(string, sftpOp, *sftpFile, string) {})
			if masking {
				a.mask = func(_ string, data []byte) ([][2]int, string) {
					return sftpChanged(data, bytes.ReplaceAll(data, []byte("SECRET"), []byte("[X]"))), ""
				}
			}
			r := bufio.NewReader(bytes.NewReader(b))
			for i := 0; ; i++ {
				raw, p, err := readSFTPPacket(r)
				if err != nil {
					break
				}
				if len(raw) != 5+len(p.body) {
					t.Fatalf("raw %d, body %d", len(raw), len(p.body))
				}
				var out []byte
				if i%2 == 0 {
					out, _ = a.request(p)
				} else {
					out, _ = a.response(p)
				}
				if out != nil {
					// What the gateway sends instead is one packet.
					if _, q, err := readSFTPPacket(bufio.NewReader(bytes.NewReader(out))); err != nil || q.typ != sftpRead && q.typ != sftpData && q.typ != sftpStatus {
						t.Fatalf("rebuilt packet %x: %v", out, err)
					} else if q.typ == sftpData && bytes.Contains(q.body, []byte("SECRET")) {
						t.Fatalf("SECRET passed: %q", q.body)
					}
				}
			}
			a.end()
			if len(a.pending) > maxSFTPPending || len(a.handles) > maxSFTPPending {
				t.Fatalf("%d pending, %d handles", len(a.pending), len(a.handles))
			}
		}
	})
}
