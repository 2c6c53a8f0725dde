package ssh

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

const (
	// KindSubsystem is a subsystem the client starts (sftp, on a target
	// with sftp = true): fields name, login; its row is recorded when it
	// ends, with the bytes both ways.
	KindSubsystem = "ssh.subsystem"
	// KindSFTP is one file operation over sftp: fields operation
	// ("read", "write", "read-write" for an opened file, at its close;
	// "list" for a directory read; "remove", "rename", "mkdir", "rmdir",
	// "setstat", "symlink"), path, to (rename, symlink) and flags; the
	// bytes written are request_bytes, the bytes read response_bytes.
	KindSFTP = "ssh.sftp"

	// VerbSFTP is the access verb of sftp (resource "/" + login).
	VerbSFTP = "sftp"
)

// SFTP packet types (draft-ietf-secsh-filexfer-02, version 3, which
// OpenSSH speaks).
const (
	sftpInit     = 1
	sftpOpen     = 3
	sftpClose    = 4
	sftpRead     = 5
	sftpWrite    = 6
	sftpSetstat  = 9
	sftpOpendir  = 11
	sftpRemove   = 13
	sftpMkdir    = 14
	sftpRmdir    = 15
	sftpRename   = 18
	sftpSymlink  = 20
	sftpStatus   = 101
	sftpHandle   = 102
	sftpData     = 103
	sftpExtended = 200
)

// maxSFTPPacket bounds one packet (OpenSSH's sftp-server takes 256 KiB).
const maxSFTPPacket = 1 << 20

// maxSFTPPending bounds the requests awaiting an answer and the handles
// open: past it the session ends rather than let an operation go
// unrecorded.
const maxSFTPPending = 4096

// sftpPacket is one packet: its type and its body after the type byte.
type sftpPacket struct {
	typ  byte
	body []byte
}

// readSFTPPacket reads one length-prefixed packet and returns it whole
// (for forwarding) and parsed.
func readSFTPPacket(r *bufio.Reader) ([]byte, sftpPacket, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, sftpPacket{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxSFTPPacket {
		return nil, sftpPacket{}, fmt.Errorf("sftp: packet of %d bytes", n)
	}
	raw := make([]byte, 4+n)
	copy(raw, hdr[:])
	if _, err := io.ReadFull(r, raw[4:]); err != nil {
		return nil, sftpPacket{}, fmt.Errorf("sftp: packet cut: %w", err)
	}
	return raw, sftpPacket{typ: raw[4], body: raw[5:]}, nil
}

// sftpReader reads the fields of a packet body; a short body sets err.
type sftpReader struct {
	b   []byte
	err error
}

var errSFTPShort = errors.New("sftp: packet too short")

func (r *sftpReader) u32() uint32 {
	if len(r.b) < 4 {
		r.err = errSFTPShort
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *sftpReader) u64() uint64 {
	if len(r.b) < 8 {
		r.err = errSFTPShort
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *sftpReader) str() string {
	n := r.u32()
	if r.err != nil || uint64(n) > uint64(len(r.b)) {
		r.err = errSFTPShort
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// sftpOp is a request waiting for its answer.
type sftpOp struct {
	op, path, to string
	handle       string
	flags        uint32
	n            int64 // bytes a write carries
	// A read widened for masking (sftpmask.go): the client's offset and
	// length, and what went upstream.
	widened bool
	off     uint64
	length  uint32
	start   uint64
	asked   uint32
}

// sftpFile is an open handle.
type sftpFile struct {
	op            string // "open" or "list"
	path          string
	flags         uint32
	read, written int64
	start         time.Time
	maskedValues  int    // values masked in what the client read
	maskedBytes   int    // bytes of them
	withheld      string // why the chain refused contents, when it did
}

// sftpAudit follows one sftp session's requests and answers and
// records a row per file operation.
type sftpAudit struct {
	record func(op string, f sftpOp, file *sftpFile, status string)
	// mask, when the target masks file contents, runs data read from
	// path through the chain and returns the ranges of data the chain
	// changed, or why the chain withholds it.
	mask func(path string, data []byte) (changed [][2]int, withheld string)

	mu      sync.Mutex
	pending map[uint32]sftpOp
	handles map[string]*sftpFile
}

func newSFTPAudit(record func(op string, f sftpOp, file *sftpFile, status string)) *sftpAudit {
	return &sftpAudit{record: record, pending: map[uint32]sftpOp{}, handles: map[string]*sftpFile{}}
}

// request notes a client packet and returns what goes upstream instead
// of it (nil: the packet as it is); an error ends the session.
func (a *sftpAudit) request(p sftpPacket) ([]byte, error) {
	if p.typ == sftpInit {
		return nil, nil
	}
	var out []byte
	r := &sftpReader{b: p.body}
	id := r.u32()
	var op sftpOp
	switch p.typ {
	case sftpOpen:
		op = sftpOp{op: "open", path: r.str()}
		op.flags = r.u32()
	case sftpOpendir:
		op = sftpOp{op: "list", path: r.str()}
	case sftpRead:
		op = sftpOp{op: "read", handle: r.str(), off: r.u64(), length: r.u32()}
		if a.mask != nil && r.err == nil {
			// Read-ahead around the client's read (sftpmask.go).
			op.widened = true
			op.start, op.asked = sftpWiden(op.off, op.length)
			out = sftpReadPacket(id, op.handle, op.start, op.asked)
		}
	case sftpWrite:
		op = sftpOp{op: "write", handle: r.str()}
		r.u32()
		r.u32() // offset
		op.n = int64(len(r.str()))
	case sftpClose:
		op = sftpOp{op: "close", handle: r.str()}
	case sftpRemove:
		op = sftpOp{op: "remove", path: r.str()}
	case sftpMkdir:
		op = sftpOp{op: "mkdir", path: r.str()}
	case sftpRmdir:
		op = sftpOp{op: "rmdir", path: r.str()}
	case sftpSetstat:
		op = sftpOp{op: "setstat", path: r.str()}
	case sftpRename:
		op = sftpOp{op: "rename", path: r.str(), to: r.str()}
	case sftpSymlink:
		op = sftpOp{op: "symlink", path: r.str(), to: r.str()}
	case sftpExtended:
		switch name := r.str(); name {
		case "posix-rename@openssh.com":
			op = sftpOp{op: "rename", path: r.str(), to: r.str()}
		case "hardlink@openssh.com":
			op = sftpOp{op: "hardlink", path: r.str(), to: r.str()}
		case "fsync@openssh.com", "statvfs@openssh.com", "fstatvfs@openssh.com", "limits@openssh.com",
			"expand-path@openssh.com", "home-directory", "users-groups-by-id@openssh.com", "lsetstat@openssh.com":
			return nil, r.err // reads metadata, or what setstat already covers
		default:
			op = sftpOp{op: "extended " + name}
		}
	default:
		// stat, lstat, fstat, realpath, readlink, readdir, fsetstat:
		// metadata, answered without a row.
		return nil, r.err
	}
	if r.err != nil {
		return nil, fmt.Errorf("sftp: request %d: %w", p.typ, r.err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) >= maxSFTPPending {
		return nil, errors.New("sftp: too many requests without an answer")
	}
	if _, dup := a.pending[id]; dup && a.mask != nil {
		// Two reads of one id: the answer of one would find no widened
		// read to be checked against.
		return nil, fmt.Errorf("sftp: request id %d reused while pending", id)
	}
	a.pending[id] = op
	return out, nil
}

// response notes a server packet, records what it ends and returns
// what goes to the client instead of it (nil: the packet as it is).
func (a *sftpAudit) response(p sftpPacket) ([]byte, error) {
	switch p.typ {
	case sftpStatus, sftpHandle, sftpData:
	default:
		return nil, nil
	}
	r := &sftpReader{b: p.body}
	id := r.u32()
	if r.err != nil {
		return nil, fmt.Errorf("sftp: answer %d: %w", p.typ, r.err)
	}
	a.mu.Lock()
	op, ok := a.pending[id]
	delete(a.pending, id)
	if a.mask != nil && p.typ == sftpData && (!ok || !op.widened) {
		// File contents that answer no widened read never pass
		// unchecked.
		a.mu.Unlock()
		return sftpStatusPacket(id, sftpFxFailure, "tollgate: an answer the gateway cannot check"), nil
	}
	if !ok {
		a.mu.Unlock()
		return nil, nil
	}
	switch p.typ {
	case sftpHandle:
		h := r.str()
		if r.err == nil && (op.op == "open" || op.op == "list") {
			if len(a.handles) >= maxSFTPPending {
				a.mu.Unlock()
				return nil, errors.New("sftp: too many open handles")
			}
			a.handles[h] = &sftpFile{op: op.op, path: op.path, flags: op.flags, start: time.Now()}
		}
		a.mu.Unlock()
		return nil, nil
	case sftpData:
		f := a.handles[op.handle]
		a.mu.Unlock()
		if op.op != "read" {
			return nil, nil
		}
		data := r.str()
		if r.err != nil {
			return nil, fmt.Errorf("sftp: answer %d: %w", p.typ, r.err)
		}
		if !op.widened {
			if f != nil {
				a.mu.Lock()
				f.read += int64(len(data))
				a.mu.Unlock()
			}
			return nil, nil
		}
		return a.maskRead(id, op, f, data), nil
	}
	code := r.u32()
	msg := r.str()
	status := "ok"
	if code != 0 {
		status = "error " + fmt.Sprint(code)
		if msg != "" {
			status += ": " + msg
		}
	}
	switch op.op {
	case "write":
		if f := a.handles[op.handle]; f != nil && code == 0 {
			f.written += op.n
		}
		a.mu.Unlock()
		return nil, nil
	case "read":
		a.mu.Unlock()
		return nil, nil // EOF, or an error the close row's bytes show
	case "close":
		f := a.handles[op.handle]
		delete(a.handles, op.handle)
		a.mu.Unlock()
		if f != nil {
			a.record(f.op, sftpOp{path: f.path, flags: f.flags}, f, status)
		}
		return nil, nil
	}
	a.mu.Unlock()
	// An open that failed, or an operation of its own.
	a.record(op.op, op, &sftpFile{start: time.Now()}, status)
	return nil, nil
}

// maskRead answers a widened read: the client's bytes of data (read at
// op.start), masked by the chain, or EOF, or a failure when the chain
// withholds them.
func (a *sftpAudit) maskRead(id uint32, op sftpOp, f *sftpFile, data string) []byte {
	from, to, ok := sftpTrim(op.off, op.length, op.start, op.asked, len(data))
	if !ok {
		return sftpStatusPacket(id, sftpFxEOF, "End of file")
	}
	path := ""
	if f != nil {
		path = f.path
	}
	raw := []byte(data)
	changed, withheld := a.mask(path, raw)
	if withheld != "" {
		if f != nil {
			a.mu.Lock()
			f.withheld = withheld
			a.mu.Unlock()
		}
		return sftpStatusPacket(id, sftpFxFailure, "tollgate: file contents withheld: "+withheld)
	}
	// Count a masked value in the reply that holds its first byte, so
	// that one cut between two replies counts once.
	values, nbytes := 0, 0
	for _, r := range changed {
		if r[0] >= from && r[0] < to {
			values++
		}
		nbytes += max(0, min(r[1], to)-max(r[0], from))
	}
	masked := sftpOverwrite(raw, changed)
	if f != nil {
		a.mu.Lock()
		f.read += int64(to - from)
		f.maskedValues += values
		f.maskedBytes += nbytes
		a.mu.Unlock()
	}
	return sftpDataPacket(id, masked[from:to])
}

// end records the handles the client never closed.
func (a *sftpAudit) end() {
	a.mu.Lock()
	handles := a.handles
	a.handles = map[string]*sftpFile{}
	a.mu.Unlock()
	for _, f := range handles {
		a.record(f.op, sftpOp{path: f.path, flags: f.flags}, f, "not closed")
	}
}

func sftpOperation(op string, flags uint32) string {
	if op != "open" {
		return op
	}
	switch {
	case flags&1 != 0 && flags&2 != 0:
		return "read-write"
	case flags&2 != 0:
		return "write"
	}
	return "read"
}

func sftpFlags(flags uint32) string {
	var out []string
	for _, f := range []struct {
		bit  uint32
		name string
	}{{1, "read"}, {2, "write"}, {4, "append"}, {8, "create"}, {0x10, "truncate"}, {0x20, "exclusive"}} {
		if flags&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return strings.Join(out, ",")
}

// sftp serves the sftp subsystem on a target that allows it: checked for
// the verb "sftp" and decided as an ssh.subsystem event, then relayed
// packet by packet, each file operation a row. File contents read pass
// the chain when the target sets sftp_mask (sftpmask.go).
func (c *conn) sftp(ch xssh.Channel, reqs <-chan *xssh.Request, id uint64, su *chanSetup) {
	s := c.sess
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	fields := map[string]string{"name": "sftp", "login": c.login}
	r := c.newRun(ch, KindSubsystem, fields, "\n")
	sig := &signals{}
	defer r.serve(reqs, cancel, sig.request)()
	defer r.record()

	ev := &event.Event{Phase: event.Request, Protocol: "ssh", Kind: KindSubsystem, Target: c.target.name, Principal: c.principal, Fields: fields}
	dec, ok := r.decide(ctx, VerbSFTP, ev)
	if !ok {
		return
	}
	defer dec.Done()
	upCh, why := c.openUpChannel(ctx, su, "subsystem", xssh.Marshal(struct{ Name string }{"sftp"}), "refused the sftp subsystem")
	if why != "" {
		r.refuse(ExitUpstream, why)
		return
	}
	defer upCh.Close()
	sig.set(upCh)

	audit := newSFTPAudit(func(op string, f sftpOp, file *sftpFile, status string) {
		row := s.Row(KindSFTP)
		row.Request = map[string]string{"operation": sftpOperation(op, f.flags), "path": f.path, "login": c.login}
		if f.to != "" {
			row.Request["to"] = f.to
		}
		if op == "open" {
			row.Request["flags"] = sftpFlags(f.flags)
		}
		row.Verdict = "allow"
		row.RequestBytes, row.ResponseBytes = file.written, file.read
		row.Status = status
		if file.withheld != "" {
			row.Error = "file contents withheld: " + file.withheld
		}
		if file.maskedValues > 0 || file.maskedBytes > 0 {
			row.Annotations = map[string]string{
				"sftp.masked_values": strconv.Itoa(file.maskedValues),
				"sftp.masked_bytes":  strconv.Itoa(file.maskedBytes),
			}
		}
		row.DurationMicro = time.Since(file.start).Microseconds()
		s.Record(row)
	})
	if c.target.opts.SFTPMask {
		audit.mask = c.sftpMask(ctx, dec, id)
	}
	// relay copies one direction packet by packet, noting each; a
	// packet it cannot read ends the session (nothing unparsed passes).
	relay := func(src io.Reader, dst io.Writer, note func(sftpPacket) ([]byte, error), n *int64) {
		br := bufio.NewReaderSize(src, 64<<10)
		for {
			raw, p, err := readSFTPPacket(br)
			if err == nil {
				var instead []byte
				if instead, err = note(p); instead != nil {
					raw = instead
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					r.protocolError(err)
					s.Log().Warn("sftp session ended", "target", c.target.name, "err", err)
					upCh.Close()
				}
				return
			}
			if _, err := dst.Write(raw); err != nil {
				upCh.Close()
				return
			}
			*n += int64(len(raw))
		}
	}
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		var inN int64
		relay(ch, upCh, audit.request, &inN)
		r.stdinN.Store(inN)
		upCh.CloseWrite()
	}()
	// The server's stderr (sftp-server's log) goes to the client's.
	errDone := make(chan struct{})
	go func() {
		defer close(errDone)
		io.Copy(ch.Stderr(), upCh.Stderr())
	}()
	relay(upCh, ch, audit.response, &r.outN)
	io.Copy(io.Discard, upCh)
	<-errDone
	r.exit = upCh.wait()
	audit.end()
	if r.exit.kind != "" {
		ch.SendRequest(r.exit.kind, false, r.exit.payload)
	}
	ch.CloseWrite()
	ch.Close()
	cancel()
	<-inDone
}

// sftpMask returns the masker of file contents read over sftp: each
// widened read is one "ssh.output" event (fd "sftp", path, eos = "1": a
// whole stream, since the read-ahead already covers what a held-back
// tail would) through the chain that decided the subsystem. The chain's
// annotations are not summed into rows: the windows overlap, so they
// would count a value twice; maskRead counts what the client got.
func (c *conn) sftpMask(ctx context.Context, dec *gate.Decision, id uint64) func(string, []byte) ([][2]int, string) {
	stream := strconv.FormatUint(id, 10) + "/sftp"
	return func(path string, data []byte) ([][2]int, string) {
		if !dec.Wants(KindOutput) {
			// The target asks for masking and nothing would mask:
			// contents are refused rather than passed unchecked.
			return nil, "no plugin masks file contents (the target sets sftp_mask)"
		}
		ev := &event.Event{Phase: event.Response, Protocol: "ssh", Kind: KindOutput, Target: c.target.name, Principal: c.principal,
			Fields: map[string]string{"data": string(data), "fd": "sftp", "stream": stream, "path": path, "eos": "1"}}
		v := dec.Process(ctx, ev)
		if v.Action == event.Deny || v.Action == event.Hold {
			if v.Reason != "" {
				return nil, v.Reason
			}
			return nil, "denied by " + v.Plugin
		}
		nv, ok := v.Changes["data"]
		if !ok || nv == string(data) {
			return nil, ""
		}
		return sftpChanged(data, []byte(nv)), ""
	}
}
