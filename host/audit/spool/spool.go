// Package spool is the durable local spool of the audit pipeline: an
// append-only write-ahead log of opaque records (encoded audit rows) that
// survives a ClickHouse outage and a killed gateway.
//
// The recorder appends every row to the spool, sends batches to the store,
// and calls Ack with the position of the last row of each batch the store
// acknowledged. On start it calls Replay and sends what was not
// acknowledged again. Delivery is therefore at-least-once: a row can be
// sent twice (each row carries a stable event ID and the store collapses
// replays), but a row the spool accepted is never dropped by the spool.
//
// # What a restart replays
//
// Exactly the records after the last position passed to Ack that returned
// nil: the acknowledgement cursor is persisted (and, unless SyncNever,
// fsynced) before Ack returns, and Replay skips every record at or before
// it, even inside a partially acknowledged segment. Segments entirely at
// or before the cursor are deleted. An Ack that had not returned when the
// process died may or may not count; either way no unacknowledged record
// is skipped.
//
// # What a crash can lose
//
// A process crash (panic, SIGKILL, OOM kill) loses nothing that Append
// returned, under every SyncPolicy: Append returns only after write(2)
// handed the bytes to the kernel. An operating system crash or power loss
// can lose:
//
//   - SyncAlways: nothing that Append returned (it fsyncs before returning).
//   - SyncBatch: records appended in the last SyncEvery (plus one fsync)
//     before the crash.
//   - SyncNever: whatever the kernel had not yet written back (on Linux,
//     typically up to 30 s of appends); the ACK file is not fsynced either,
//     so acknowledged records may be replayed again.
//
// A write cut short by the crash leaves a torn record at the end of the
// last segment; Open truncates it (and logs the file and offset). Only
// that record is lost, and it is one that Append had not returned.
//
// # Corruption
//
// Open verifies every record. A record that fails its checksum or framing
// (bit rot, a damaged disk, a hostile file) is never replayed: Open logs
// the file and offset, and the rest of that segment is skipped, because
// without a trustworthy length there is no safe way to find the next
// record. The skipped bytes stay on disk until the segment is acknowledged
// and deleted. Stats.Corrupt and Stats.CorruptBytes count what was skipped.
package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SyncPolicy says when Append makes records durable against an operating
// system crash (see the package documentation for what each can lose).
type SyncPolicy uint8

const (
	// SyncBatch writes each Append to the kernel at once and fsyncs in the
	// background at most every Options.SyncEvery, so a burst of appends
	// costs one fsync. It is the default (the zero value).
	SyncBatch SyncPolicy = iota
	// SyncAlways fsyncs before Append returns. Concurrent appenders share
	// one fsync (group commit).
	SyncAlways
	// SyncNever never fsyncs; the kernel writes back when it likes.
	SyncNever
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncBatch:
		return "batch"
	case SyncAlways:
		return "always"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", uint8(p))
}

// Defaults for the zero fields of Options.
const (
	DefaultSegmentBytes = 64 << 20
	DefaultMaxBytes     = 1 << 30
	DefaultSyncEvery    = 10 * time.Millisecond
)

// Options configures Open.
type Options struct {
	// Dir holds the spool; Open creates it (mode 0700) if needed.
	Dir string
	// SegmentBytes: an Append that would take the current segment past
	// this size starts a new segment file first (default 64 MiB). A
	// single batch is never split, so a segment can exceed it by one batch.
	SegmentBytes int64
	// MaxBytes bounds the unacknowledged data (framed records, as reported
	// by Size); Append returns ErrFull rather than exceed it (default
	// 1 GiB). The disk holds at most MaxBytes plus the acknowledged head of
	// the oldest segment (under SegmentBytes plus one batch), plus headers.
	MaxBytes int64
	// Sync chooses when appends are fsynced (default SyncBatch).
	Sync SyncPolicy
	// SyncEvery is SyncBatch's interval (default 10ms).
	SyncEvery time.Duration
	// Logger receives torn-tail and corruption reports (default
	// slog.Default()).
	Logger *slog.Logger
}

var (
	// ErrFull is returned by Append when the records would take the
	// unacknowledged data past Options.MaxBytes.
	ErrFull = errors.New("spool: full")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrTooLarge is returned by Append for a payload over MaxRecord bytes.
	ErrTooLarge = errors.New("spool: record too large")
	// ErrBadPos is returned by Ack for a position that names no record.
	ErrBadPos = errors.New("spool: no record at position")
	// ErrLocked is returned by Open when another process has the spool open.
	ErrLocked = errors.New("spool: locked by another process")
)

// Pos is the position of a record: its segment's sequence number and the
// byte offset of the record in that segment file. Positions are
// comparable with ==, ordered by Compare, and stable across restarts.
type Pos struct {
	Segment uint64
	Offset  int64
}

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p Pos) Compare(q Pos) int {
	switch {
	case p.Segment < q.Segment:
		return -1
	case p.Segment > q.Segment:
		return 1
	case p.Offset < q.Offset:
		return -1
	case p.Offset > q.Offset:
		return 1
	}
	return 0
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Stats are the spool's counters. Counters are since Open.
type Stats struct {
	Appended uint64 // records appended
	Acked    uint64 // records acknowledged
	Pending  int64  // unacknowledged records on disk
	Bytes    int64  // unacknowledged bytes (Size)
	Segments int    // segment files on disk

	TornTails    uint64 // torn tails cut off the last segment by Open
	TornBytes    int64  // bytes cut
	Corrupt      uint64 // corrupt records found; the rest of each one's segment was skipped
	CorruptBytes int64  // bytes skipped because of them (not replayed, ever)
}

// segment is what the spool knows about one segment file.
type segment struct {
	seq     uint64
	end     int64 // end of the valid records (the write offset of the active one)
	records int64 // valid records
	sealed  bool  // never appended to again (full, or damaged)
}

// activeFile is the segment being appended to. Its lock lets a background
// fsync run without the spool's lock while a roll waits to close it.
type activeFile struct {
	mu     sync.RWMutex
	f      *os.File
	closed bool
}

// Spool is a durable append-only log of records. Its methods are safe for
// concurrent use.
type Spool struct {
	dir   string
	opt   Options
	log   *slog.Logger
	lockf *os.File

	ackMu  sync.Mutex // serializes Ack
	syncMu sync.Mutex // serializes fsyncs of the active file

	mu      sync.Mutex
	closed  bool
	err     error // sticky: a failed fsync or an unrecoverable write
	segs    []*segment
	af      *activeFile
	cursor  Pos   // end of the last acknowledged record
	curRecs int64 // records of segment cursor.Segment before cursor
	pending int64 // unacknowledged records
	bytes   int64 // unacknowledged bytes
	wgen    uint64
	wbuf    []byte
	stats   Stats

	synced atomic.Uint64 // wgen covered by a completed fsync

	dirty chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

// Open opens or creates the spool in o.Dir. It verifies every record of
// every segment: a torn tail on the last segment (an interrupted write) is
// truncated, and a corrupt record elsewhere is reported and the rest of its
// segment skipped (see the package documentation); both are logged with
// the file and offset, and neither stops Open. Segments wholly
// acknowledged (left by a crash between Ack's two steps) are deleted.
//
// # Errors
//
// Open returns an error only when the directory cannot be used: it cannot
// be created, listed or locked (ErrLocked when another process holds it),
// a segment cannot be read or truncated, or a new segment cannot be
// created. A damaged record or ACK file is never an error.
func Open(o Options) (*Spool, error) {
	if o.Dir == "" {
		return nil, errors.New("spool: Options.Dir is empty")
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = DefaultSyncEvery
	}
	if o.Sync > SyncNever {
		return nil, fmt.Errorf("spool: unknown %v", o.Sync)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lockf, err := lockDir(filepath.Join(o.Dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{
		dir: o.Dir, opt: o, log: o.Logger, lockf: lockf,
		dirty: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if err := s.load(); err != nil {
		s.closeFiles()
		lockf.Close()
		return nil, err
	}
	if o.Sync == SyncBatch {
		go s.flusher()
	} else {
		close(s.done)
	}
	return s, nil
}

func (s *Spool) path(seq uint64) string { return filepath.Join(s.dir, segName(seq)) }

// load scans the directory and prepares the active segment.
func (s *Spool) load() error {
	_ = os.Remove(filepath.Join(s.dir, "ACK.tmp"))
	if b, err := os.ReadFile(filepath.Join(s.dir, "ACK")); err == nil {
		p, derr := decodeAck(b)
		if derr != nil {
			// Replaying too much is safe; skipping is not.
			s.log.Error("spool: ignoring damaged ACK file; everything on disk will be replayed",
				"file", filepath.Join(s.dir, "ACK"), "err", derr)
		} else {
			s.cursor = p
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}

	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		if seq, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)

	var drop []uint64
	for i, seq := range seqs {
		if seq < s.cursor.Segment {
			drop = append(drop, seq)
			continue
		}
		sg, err := s.scan(seq, i == len(seqs)-1)
		if err != nil {
			return err
		}
		if sg != nil { // nil: removed
			s.segs = append(s.segs, sg)
		}
	}

	// The cursor segment: snap the cursor to a record boundary and count
	// what it covers; drop it if wholly acknowledged and not the last.
	if len(s.segs) > 0 && s.segs[0].seq == s.cursor.Segment {
		sg := s.segs[0]
		n, at, err := s.countBefore(sg, s.cursor.Offset)
		if err != nil {
			return err
		}
		s.cursor.Offset, s.curRecs = at, n
		if at >= sg.end && len(s.segs) > 1 {
			drop = append(drop, sg.seq)
			s.segs = s.segs[1:]
		}
	}
	for _, seq := range drop {
		if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("spool: cannot delete acknowledged segment", "file", s.path(seq), "err", err)
		}
	}
	s.recount()

	// Choose the active segment: the last one if it is appendable and
	// after the cursor, else a new one.
	last := s.cursor.Segment
	if n := len(s.segs); n > 0 {
		sg := s.segs[n-1]
		last = max(last, sg.seq)
		if !sg.sealed && !(sg.seq == s.cursor.Segment && s.cursor.Offset >= sg.end) {
			f, err := os.OpenFile(s.path(sg.seq), os.O_WRONLY, 0)
			if err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			s.af = &activeFile{f: f}
			return nil
		}
	}
	return s.newSegment(last + 1)
}

// scan verifies a segment file and returns what is valid in it. For the
// last segment it truncates a torn tail, and removes the file (returning
// nil) if even its header is torn.
func (s *Spool) scan(seq uint64, last bool) (*segment, error) {
	path := s.path(seq)
	sg := &segment{seq: seq, end: segHeaderSize}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	size := fi.Size()
	hdr := make([]byte, segHeaderSize)
	n, err := f.ReadAt(hdr, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if herr := checkSegHeader(hdr[:n], seq); herr != nil {
		if last && size < segHeaderSize {
			// Created, then killed before the header was written.
			s.log.Warn("spool: removing last segment with a torn header (an interrupted create)",
				"file", path, "offset", 0, "cut_bytes", size)
			s.stats.TornTails++
			s.stats.TornBytes += size
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("spool: %w", err)
			}
			return nil, nil
		}
		s.log.Error("spool: corrupt segment header; skipping the whole segment",
			"file", path, "offset", 0, "err", herr, "skipped_bytes", size)
		s.stats.Corrupt++
		s.stats.CorruptBytes += size
		sg.sealed = true
		return sg, nil
	}
	d := &recordReader{r: bufio.NewReaderSize(io.NewSectionReader(f, segHeaderSize, size-segHeaderSize), 256<<10), off: segHeaderSize, end: size}
	for {
		_, _, err := d.next()
		if err == nil {
			sg.records++
			continue
		}
		if err == io.EOF {
			break
		}
		var bad *badRecord
		if !errors.As(err, &bad) {
			return nil, fmt.Errorf("spool: reading %s: %w", path, err)
		}
		if last && !bad.tail {
			// A zero-filled tail is what a file system leaves after a
			// crash that lost the data of an extended file: torn too.
			z, err := allZero(f, d.off, size)
			if err != nil {
				return nil, fmt.Errorf("spool: reading %s: %w", path, err)
			}
			bad.tail = z
		}
		if last && bad.tail {
			s.log.Warn("spool: truncating torn tail of last segment (an interrupted write)",
				"file", path, "offset", d.off, "cut_bytes", size-d.off, "reason", bad.reason)
			if err := f.Truncate(d.off); err != nil {
				return nil, fmt.Errorf("spool: truncating %s: %w", path, err)
			}
			if s.opt.Sync != SyncNever {
				if err := f.Sync(); err != nil {
					return nil, fmt.Errorf("spool: %w", err)
				}
			}
			s.stats.TornTails++
			s.stats.TornBytes += size - d.off
		} else {
			s.log.Error("spool: corrupt record; skipping the rest of the segment",
				"file", path, "offset", d.off, "reason", bad.reason, "skipped_bytes", size-d.off)
			s.stats.Corrupt++
			s.stats.CorruptBytes += size - d.off
			sg.sealed = true
		}
		break
	}
	sg.end = d.off
	return sg, nil
}

// allZero reports whether f holds only zero bytes in [from, to).
func allZero(f *os.File, from, to int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for from < to {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), to-from)], from)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		from += int64(n)
		if err != nil {
			if err == io.EOF {
				return true, nil
			}
			return false, err
		}
	}
	return true, nil
}

// countBefore returns how many records of sg start before off, and the
// first record boundary at or after off (sg.end if none).
func (s *Spool) countBefore(sg *segment, off int64) (int64, int64, error) {
	if off <= segHeaderSize {
		return 0, segHeaderSize, nil
	}
	if off >= sg.end {
		return sg.records, max(off, sg.end), nil
	}
	f, err := os.Open(s.path(sg.seq))
	if err != nil {
		return 0, 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	d := &recordReader{r: bufio.NewReaderSize(io.NewSectionReader(f, segHeaderSize, sg.end-segHeaderSize), 256<<10), off: segHeaderSize, end: sg.end}
	var n int64
	for d.off < off {
		if _, _, err := d.next(); err != nil {
			return 0, 0, fmt.Errorf("spool: rereading %s: %w", s.path(sg.seq), err)
		}
		n++
	}
	return n, d.off, nil
}

// recount recomputes pending and bytes from the segment list.
func (s *Spool) recount() {
	s.pending, s.bytes = 0, 0
	for _, sg := range s.segs {
		switch {
		case sg.seq < s.cursor.Segment:
		case sg.seq == s.cursor.Segment:
			s.pending += sg.records - s.curRecs
			s.bytes += sg.end - max(s.cursor.Offset, segHeaderSize)
		default:
			s.pending += sg.records
			s.bytes += sg.end - segHeaderSize
		}
	}
}

// newSegment creates segment seq, makes it the active one, and seals and
// closes the previous active file.
func (s *Spool) newSegment(seq uint64) error {
	path := s.path(seq)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Write(encodeSegHeader(seq)); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if s.opt.Sync != SyncNever {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
		if err := syncDir(s.dir); err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
	}
	if old := s.af; old != nil {
		old.mu.Lock() // waits for a background fsync of it
		var err error
		if s.opt.Sync != SyncNever {
			err = old.f.Sync()
		}
		old.f.Close()
		old.closed = true
		old.mu.Unlock()
		if err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
		s.synced.Store(s.wgen)
		s.segs[len(s.segs)-1].sealed = true
	}
	s.af = &activeFile{f: f}
	s.segs = append(s.segs, &segment{seq: seq, end: segHeaderSize})
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Append adds one record and returns its position. It returns once the
// record reached the kernel (and, under SyncAlways, the disk); see the
// package documentation for what a crash can lose.
//
// # Errors
//
// ErrTooLarge if the payload exceeds MaxRecord; ErrFull if it would take
// Size past Options.MaxBytes (nothing is written: Ack, then retry);
// ErrClosed after Close; otherwise an I/O error. After a failed fsync
// every later Append returns that error: the kernel may have dropped the
// data, so close the spool and reopen it (which replays from disk).
func (s *Spool) Append(payload []byte) (Pos, error) {
	return s.AppendBatch([][]byte{payload})
}

// AppendBatch appends the payloads, in order, with one write (and at most
// one fsync), and returns the position of the last one. The batch is all
// or nothing as far as Append is concerned; a crash in the middle of the
// write can leave a prefix of it, which Replay returns. An empty batch
// does nothing and returns the zero Pos.
//
// # Errors
//
// As Append; when any payload is too large, nothing is written.
func (s *Spool) AppendBatch(payloads [][]byte) (last Pos, err error) {
	if len(payloads) == 0 {
		return Pos{}, nil
	}
	var size int64
	for _, p := range payloads {
		if len(p) > MaxRecord {
			return Pos{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(p), MaxRecord)
		}
		size += recHeaderSize + int64(len(p))
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Pos{}, ErrClosed
	}
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return Pos{}, err
	}
	if s.bytes+size > s.opt.MaxBytes {
		s.mu.Unlock()
		return Pos{}, fmt.Errorf("%w: %d unacknowledged bytes, limit %d", ErrFull, s.bytes, s.opt.MaxBytes)
	}
	act := s.segs[len(s.segs)-1]
	if act.end > segHeaderSize && act.end+size > s.opt.SegmentBytes {
		if err := s.newSegment(act.seq + 1); err != nil {
			s.mu.Unlock()
			return Pos{}, err
		}
		act = s.segs[len(s.segs)-1]
	}
	buf := s.wbuf[:0]
	for _, p := range payloads {
		last = Pos{Segment: act.seq, Offset: act.end + int64(len(buf))}
		buf = appendRecord(buf, p)
	}
	if cap(buf) <= 1<<20 {
		s.wbuf = buf
	}
	if _, err := s.af.f.WriteAt(buf, act.end); err != nil {
		// Take back whatever part was written so that the next append
		// starts on a record boundary.
		if terr := s.af.f.Truncate(act.end); terr != nil {
			s.err = fmt.Errorf("spool: write failed (%v) and cannot be undone: %w", err, terr)
		}
		s.mu.Unlock()
		return Pos{}, fmt.Errorf("spool: %w", err)
	}
	n := int64(len(payloads))
	act.end += size
	act.records += n
	s.pending += n
	s.bytes += size
	s.stats.Appended += uint64(n)
	s.wgen++
	gen := s.wgen
	s.mu.Unlock()

	switch s.opt.Sync {
	case SyncAlways:
		if err := s.syncTo(gen); err != nil {
			return Pos{}, err
		}
	case SyncBatch:
		select {
		case s.dirty <- struct{}{}:
		default:
		}
	}
	return last, nil
}

// Sync returns once an fsync has covered every record appended before
// it was called. Concurrent callers share one fsync (group commit): a
// caller that arrives while one runs waits for it, then the next one
// covers it and every caller that arrived meanwhile. Under SyncNever it
// does nothing: the operator chose not to fsync.
//
// # Errors
//
// ErrClosed after Close; the sticky error of a failed fsync.
func (s *Spool) Sync() error {
	if s.opt.Sync == SyncNever {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	gen := s.wgen
	s.mu.Unlock()
	return s.syncTo(gen)
}

// syncTo returns once an fsync has covered write generation gen.
func (s *Spool) syncTo(gen uint64) error {
	if s.synced.Load() >= gen {
		return nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced.Load() >= gen {
		return nil
	}
	s.mu.Lock()
	af, target, serr := s.af, s.wgen, s.err
	s.mu.Unlock()
	if serr != nil {
		return serr
	}
	af.mu.RLock()
	var err error
	if !af.closed { // else the roll that closed it fsynced it
		err = af.f.Sync()
	}
	af.mu.RUnlock()
	if err != nil {
		err = fmt.Errorf("spool: fsync: %w", err)
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
		s.log.Error("spool: fsync failed; the spool refuses appends until reopened", "err", err)
		return err
	}
	for {
		cur := s.synced.Load()
		if cur >= target || s.synced.CompareAndSwap(cur, target) {
			return nil
		}
	}
}

// flusher fsyncs dirty data at most every SyncEvery (SyncBatch).
func (s *Spool) flusher() {
	defer close(s.done)
	var last time.Time
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-s.stop:
			return
		case <-s.dirty:
		}
		if wait := time.Until(last.Add(s.opt.SyncEvery)); wait > 0 {
			t.Reset(wait)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		s.mu.Lock()
		gen := s.wgen
		s.mu.Unlock()
		_ = s.syncTo(gen) // a failure is sticky and logged
		last = time.Now()
	}
}

// Replay calls fn for every unacknowledged record, oldest first, with its
// position and payload. It sees the records that were appended when it was
// called; it skips a record that an Ack running meanwhile covered only if
// that record's segment was already deleted. payload is valid only until
// fn returns: copy it to keep it. fn may call Append and Ack.
//
// # Errors
//
// Replay stops at, and returns, the first error fn returns. It returns
// ErrClosed after Close and an I/O error if a segment cannot be read. A
// record that no longer verifies (damaged since Open) is not an error:
// it is logged, counted in Stats.Corrupt, and the rest of its segment is
// skipped.
func (s *Spool) Replay(fn func(p Pos, payload []byte) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	type span struct {
		seq        uint64
		start, end int64
	}
	var spans []span
	for _, sg := range s.segs {
		start := int64(segHeaderSize)
		if sg.seq == s.cursor.Segment {
			start = max(start, s.cursor.Offset)
		}
		if sg.seq >= s.cursor.Segment && start < sg.end {
			spans = append(spans, span{sg.seq, start, sg.end})
		}
	}
	s.mu.Unlock()

	var buf []byte
	for _, sp := range spans {
		path := s.path(sp.seq)
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && s.acked(Pos{sp.seq, sp.end}) {
				continue // acknowledged and deleted meanwhile
			}
			return fmt.Errorf("spool: %w", err)
		}
		d := &recordReader{r: bufio.NewReaderSize(io.NewSectionReader(f, sp.start, sp.end-sp.start), 256<<10), off: sp.start, end: sp.end, buf: buf}
		for {
			at, p, err := d.next()
			if err == io.EOF {
				break
			}
			var bad *badRecord
			if errors.As(err, &bad) {
				s.log.Error("spool: corrupt record found during replay; skipping the rest of the segment",
					"file", path, "offset", d.off, "reason", bad.reason, "skipped_bytes", sp.end-d.off)
				s.mu.Lock()
				s.stats.Corrupt++
				s.stats.CorruptBytes += sp.end - d.off
				s.mu.Unlock()
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("spool: reading %s: %w", path, err)
			}
			if err := fn(Pos{Segment: sp.seq, Offset: at}, p); err != nil {
				f.Close()
				return err
			}
		}
		buf = d.buf
		f.Close()
	}
	return nil
}

// acked reports whether every record before p is acknowledged.
func (s *Spool) acked(p Pos) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.Compare(s.cursor) <= 0 || (len(s.segs) > 0 && p.Segment < s.segs[0].seq)
}

// Ack marks every record at or before p as delivered. It persists the
// acknowledgement (fsynced unless SyncNever) before it returns, then
// deletes every segment whose records are all acknowledged; when that
// includes the segment being appended to, appends move to a new one, so a
// fully acknowledged spool holds one empty segment. Acking a position at
// or before an earlier Ack does nothing.
//
// # Errors
//
// ErrBadPos (wrapped) when p is after the cursor but is not the position
// of a record in the spool (use the positions Append and Replay return);
// ErrClosed after Close; an I/O error when the ACK file cannot be written,
// in which case nothing was acknowledged. Failing to delete a segment is
// only logged (Open retries).
func (s *Spool) Ack(p Pos) error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	cur := s.cursor
	if p.Compare(cur) < 0 || (len(s.segs) > 0 && p.Segment < s.segs[0].seq) {
		s.mu.Unlock()
		return nil
	}
	var sg segment
	found := false
	for _, x := range s.segs {
		if x.seq == p.Segment {
			sg, found = *x, true
			break
		}
	}
	curRecs := s.curRecs
	s.mu.Unlock()
	if !found || p.Offset < segHeaderSize || p.Offset >= sg.end {
		return fmt.Errorf("%w %v", ErrBadPos, p)
	}

	// Walk the record headers from the last known boundary to p: this
	// checks that p is a record and finds its end. The bytes walked are
	// immutable (they precede sg.end as we saw it).
	start, k := int64(segHeaderSize), int64(0)
	if sg.seq == cur.Segment {
		start, k = cur.Offset, curRecs
	}
	f, err := os.Open(s.path(sg.seq))
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	d := &recordReader{r: bufio.NewReaderSize(io.NewSectionReader(f, start, sg.end-start), 64<<10), off: start, end: sg.end}
	at := int64(-1)
	for d.off <= p.Offset {
		a, _, err := d.next()
		if err != nil {
			f.Close()
			return fmt.Errorf("%w %v: %v", ErrBadPos, p, err)
		}
		at = a
		k++
	}
	f.Close()
	if at != p.Offset {
		return fmt.Errorf("%w %v", ErrBadPos, p)
	}
	next := Pos{Segment: sg.seq, Offset: d.off}

	if err := s.writeAck(next); err != nil {
		return err
	}

	s.mu.Lock()
	old := s.pending
	s.cursor, s.curRecs = next, k
	var del []uint64
	i := 0
	for i < len(s.segs) {
		x := s.segs[i]
		if x.seq < next.Segment || (x.seq == next.Segment && next.Offset >= x.end && i < len(s.segs)-1) {
			del = append(del, x.seq)
			i++
			continue
		}
		break
	}
	s.segs = s.segs[i:]
	var rollErr error
	if len(s.segs) == 1 && s.segs[0].seq == next.Segment && next.Offset >= s.segs[0].end && !s.closed {
		// Everything is acknowledged, the active segment included.
		seq := s.segs[0].seq
		if rollErr = s.newSegment(seq + 1); rollErr == nil {
			del = append(del, seq)
			s.segs = s.segs[1:]
		}
	}
	s.recount()
	s.stats.Acked += uint64(old - s.pending)
	s.mu.Unlock()

	for _, seq := range del {
		if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("spool: cannot delete acknowledged segment", "file", s.path(seq), "err", err)
		}
	}
	if rollErr != nil {
		s.log.Warn("spool: cannot start a new segment after a full ack", "err", rollErr)
	}
	return nil
}

// writeAck persists the cursor atomically.
func (s *Spool) writeAck(p Pos) error {
	tmp := filepath.Join(s.dir, "ACK.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(encodeAck(p))
	if err == nil && s.opt.Sync != SyncNever {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, "ACK"))
	}
	if err == nil && s.opt.Sync != SyncNever {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("spool: writing ACK: %w", err)
	}
	return nil
}

// Size returns the unacknowledged bytes on disk: the framed records
// (8-byte header plus payload) after the acknowledgement cursor. It is the
// figure Options.MaxBytes bounds.
func (s *Spool) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Pending, st.Bytes, st.Segments = s.pending, s.bytes, len(s.segs)
	return st
}

// Close fsyncs (unless SyncNever) and closes the spool. Appends that
// returned stay on disk for the next Open to replay.
//
// # Errors
//
// Close returns the sticky error of a failed fsync, or the error of the
// final fsync or close. Closing twice returns ErrClosed.
func (s *Spool) Close() error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done

	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.err
	if s.opt.Sync != SyncNever && err == nil {
		s.af.mu.Lock()
		err = s.af.f.Sync()
		s.af.mu.Unlock()
	}
	if cerr := s.closeFiles(); err == nil {
		err = cerr
	}
	s.lockf.Close()
	return err
}

func (s *Spool) closeFiles() error {
	if s.af == nil || s.af.closed {
		return nil
	}
	s.af.mu.Lock()
	defer s.af.mu.Unlock()
	s.af.closed = true
	return s.af.f.Close()
}
