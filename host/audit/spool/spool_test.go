package spool

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type rec struct {
	pos Pos
	p   []byte
}

func openT(t testing.TB, o Options) (*Spool, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	o.Logger = slog.New(slog.NewTextHandler(lb, nil))
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, lb
}

func replayAll(t testing.TB, s *Spool) []rec {
	t.Helper()
	var out []rec
	err := s.Replay(func(p Pos, b []byte) error {
		if n := len(out); n > 0 && out[n-1].pos.Compare(p) >= 0 {
			t.Fatalf("replay out of order: %v after %v", p, out[n-1].pos)
		}
		out = append(out, rec{p, bytes.Clone(b)})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return out
}

// payload returns record i's payload; sizes vary and include 0.
func payload(i int) []byte {
	n := (i * 37) % 300
	if i%7 == 0 {
		n = 0
	}
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j)
	}
	return b
}

func appendN(t testing.TB, s *Spool, from, n int) []rec {
	t.Helper()
	var out []rec
	for i := from; i < from+n; i++ {
		p, err := s.Append(payload(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out = append(out, rec{p, payload(i)})
	}
	return out
}

func sameRecs(t testing.TB, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].pos != want[i].pos || !bytes.Equal(got[i].p, want[i].p) {
			t.Fatalf("record %d: got %v (%d bytes), want %v (%d bytes)", i, got[i].pos, len(got[i].p), want[i].pos, len(want[i].p))
		}
	}
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestRoundTripAndRolling(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncBatch, SyncAlways, SyncNever} {
		t.Run(pol.String(), func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openT(t, Options{Dir: dir, Sync: pol, SegmentBytes: 2048})
			want := appendN(t, s, 0, 100)
			batch := [][]byte{payload(100), payload(101), {}, payload(103)}
			last, err := s.AppendBatch(batch)
			if err != nil {
				t.Fatal(err)
			}
			got := replayAll(t, s)
			if got[len(got)-1].pos != last {
				t.Fatalf("AppendBatch returned %v, last replayed %v", last, got[len(got)-1].pos)
			}
			for i, b := range batch {
				want = append(want, rec{got[100+i].pos, b})
			}
			sameRecs(t, got, want)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if n := len(segFiles(t, dir)); n < 5 {
				t.Fatalf("%d segments, want several", n)
			}
			s, lb := openT(t, Options{Dir: dir, Sync: pol, SegmentBytes: 2048})
			defer s.Close()
			sameRecs(t, replayAll(t, s), want)
			if st := s.Stats(); st.Pending != int64(len(want)) || st.Corrupt != 0 || st.TornTails != 0 {
				t.Fatalf("stats %+v", st)
			}
			if lb.String() != "" {
				t.Fatalf("unexpected log: %s", lb)
			}
			// Appends continue after a reopen.
			want = append(want, appendN(t, s, 200, 3)...)
			sameRecs(t, replayAll(t, s), want)
		})
	}
}

func TestAck(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 1024}
	s, _ := openT(t, o)
	all := appendN(t, s, 0, 60)
	nseg := len(segFiles(t, dir))
	if err := s.Ack(Pos{Segment: 999, Offset: 20}); !errors.Is(err, ErrBadPos) {
		t.Fatalf("Ack of a foreign position: %v", err)
	}
	if err := s.Ack(Pos{Segment: all[5].pos.Segment, Offset: all[5].pos.Offset + 1}); !errors.Is(err, ErrBadPos) {
		t.Fatalf("Ack inside a record: %v", err)
	}
	k := 37
	if err := s.Ack(all[k].pos); err != nil {
		t.Fatal(err)
	}
	sameRecs(t, replayAll(t, s), all[k+1:])
	if err := s.Ack(all[3].pos); err != nil { // earlier: no-op
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Acked != uint64(k+1) || st.Pending != int64(len(all)-k-1) {
		t.Fatalf("stats %+v", st)
	}
	files := segFiles(t, dir)
	if filepath.Base(files[0]) != segName(all[k].pos.Segment) || len(files) >= nseg {
		t.Fatalf("segments before the acked one not deleted: %v", files)
	}
	var wantSize int64
	for _, r := range all[k+1:] {
		wantSize += recHeaderSize + int64(len(r.p))
	}
	if s.Size() != wantSize {
		t.Fatalf("Size %d, want %d", s.Size(), wantSize)
	}
	s.Close()

	// A restart replays exactly what follows the acked position, even
	// inside the partially acknowledged segment.
	s, _ = openT(t, o)
	sameRecs(t, replayAll(t, s), all[k+1:])
	if s.Size() != wantSize {
		t.Fatalf("Size after reopen %d, want %d", s.Size(), wantSize)
	}
	// Ack everything: only one empty segment remains.
	if err := s.Ack(all[len(all)-1].pos); err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, s); len(got) != 0 {
		t.Fatalf("replayed %d after full ack", len(got))
	}
	if files := segFiles(t, dir); len(files) != 1 || s.Size() != 0 {
		t.Fatalf("after full ack: %v, size %d", files, s.Size())
	}
	more := appendN(t, s, 100, 5)
	s.Close()
	s, _ = openT(t, o)
	defer s.Close()
	sameRecs(t, replayAll(t, s), more)
	if more[0].pos.Compare(all[len(all)-1].pos) <= 0 {
		t.Fatalf("new positions %v not after acked %v", more[0].pos, all[len(all)-1].pos)
	}
}

// TestAckDuringReplay acks from inside Replay's callback, as the recorder
// does after a resend.
func TestAckDuringReplay(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, Options{Dir: dir, SegmentBytes: 700})
	defer s.Close()
	all := appendN(t, s, 0, 50)
	var got []rec
	err := s.Replay(func(p Pos, b []byte) error {
		got = append(got, rec{p, bytes.Clone(b)})
		return s.Ack(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	sameRecs(t, got, all)
	if len(replayAll(t, s)) != 0 || len(segFiles(t, dir)) != 1 {
		t.Fatal("not everything acknowledged")
	}
}

func TestReplayStopsOnError(t *testing.T) {
	s, _ := openT(t, Options{Dir: t.TempDir()})
	defer s.Close()
	appendN(t, s, 0, 10)
	stop := errors.New("stop")
	n := 0
	err := s.Replay(func(Pos, []byte) error {
		n++
		if n == 4 {
			return stop
		}
		return nil
	})
	if err != stop || n != 4 {
		t.Fatalf("err %v after %d calls", err, n)
	}
}

func TestFull(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, Options{Dir: dir, MaxBytes: 10 * (recHeaderSize + 100), SegmentBytes: 3 * (recHeaderSize + 100)})
	defer s.Close()
	b := make([]byte, 100)
	var ps []Pos
	for range 10 {
		p, err := s.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if _, err := s.Append(b); !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes: %v", err)
	}
	if _, err := s.Append(nil); !errors.Is(err, ErrFull) {
		t.Fatalf("empty Append past MaxBytes: %v", err)
	}
	if _, err := s.Append(make([]byte, MaxRecord+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized Append: %v", err)
	}
	if err := s.Ack(ps[1]); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.Append(b); err != nil {
			t.Fatalf("Append after Ack: %v", err)
		}
	}
	if _, err := s.Append(b); !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes again: %v", err)
	}
	if got := len(replayAll(t, s)); got != 10 {
		t.Fatalf("replayed %d, want 10", got)
	}
}

func TestClosed(t *testing.T) {
	s, _ := openT(t, Options{Dir: t.TempDir()})
	p, _ := s.Append([]byte("x"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append([]byte("x")); err != ErrClosed {
		t.Fatal(err)
	}
	if err := s.Ack(p); err != ErrClosed {
		t.Fatal(err)
	}
	if err := s.Replay(func(Pos, []byte) error { return nil }); err != ErrClosed {
		t.Fatal(err)
	}
	if err := s.Close(); err != ErrClosed {
		t.Fatal(err)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, Options{Dir: dir})
	defer s.Close()
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
}

// copyDir copies the spool files of src into a new temp dir.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestTornTail(t *testing.T) {
	src := t.TempDir()
	s, _ := openT(t, Options{Dir: src, Sync: SyncNever, SegmentBytes: 1500})
	all := appendN(t, s, 1, 12)
	s.Close()
	last := all[len(all)-1]
	segPath := filepath.Join(src, segName(last.pos.Segment))
	full, err := os.ReadFile(segPath)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(full)) != last.pos.Offset+recHeaderSize+int64(len(last.p)) {
		t.Fatal("last record is not at the end of the last segment")
	}

	check := func(t *testing.T, dir string, want []rec, wantLog bool) {
		t.Helper()
		o := Options{Dir: dir, Sync: SyncNever, SegmentBytes: 1500}
		s, lb := openT(t, o)
		sameRecs(t, replayAll(t, s), want)
		if wantLog {
			if l := lb.String(); !strings.Contains(l, segName(last.pos.Segment)) || !strings.Contains(l, "offset=") {
				t.Fatalf("no log naming the file and offset: %q", l)
			}
			if st := s.Stats(); st.TornTails+st.Corrupt != 1 {
				t.Fatalf("stats %+v", st)
			}
		}
		more, err := s.Append([]byte("after"))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, lb = openT(t, o)
		defer s.Close()
		sameRecs(t, replayAll(t, s), append(slices.Clone(want), rec{more, []byte("after")}))
		if lb.String() != "" {
			t.Fatalf("second Open logged: %s", lb)
		}
	}

	for cut := last.pos.Offset; cut < int64(len(full)); cut++ {
		dir := copyDir(t, src)
		if err := os.Truncate(filepath.Join(dir, segName(last.pos.Segment)), cut); err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("cut%d", cut), func(t *testing.T) { check(t, dir, all[:len(all)-1], cut > last.pos.Offset) })
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		dir := copyDir(t, src)
		g := make([]byte, 1+rng.IntN(200))
		for j := range g {
			g[j] = byte(rng.Uint32())
		}
		if i%5 == 0 {
			clear(g) // a zero-filled tail
		}
		f, _ := os.OpenFile(filepath.Join(dir, segName(last.pos.Segment)), os.O_WRONLY|os.O_APPEND, 0)
		f.Write(g)
		f.Close()
		t.Run(fmt.Sprintf("garbage%d", i), func(t *testing.T) { check(t, dir, all, true) })
	}
}

func TestBitRot(t *testing.T) {
	src := t.TempDir()
	o := Options{Dir: src, Sync: SyncNever, SegmentBytes: 1200}
	s, _ := openT(t, o)
	all := appendN(t, s, 1, 30)
	s.Close()
	segs := segFiles(t, src)
	if len(segs) < 3 {
		t.Fatalf("want 3+ segments, have %d", len(segs))
	}

	// Flip a byte in the payload of the third record of the first segment.
	var first []rec
	for _, r := range all {
		if r.pos.Segment == all[0].pos.Segment {
			first = append(first, r)
		}
	}
	victim := first[2]
	if len(victim.p) == 0 {
		victim = first[3]
	}
	dir := copyDir(t, src)
	path := filepath.Join(dir, segName(victim.pos.Segment))
	b, _ := os.ReadFile(path)
	b[victim.pos.Offset+recHeaderSize] ^= 0x40
	os.WriteFile(path, b, 0o600)

	o.Dir = dir
	s, lb := openT(t, o)
	var want []rec
	for _, r := range all {
		if r.pos.Segment != victim.pos.Segment || r.pos.Offset < victim.pos.Offset {
			want = append(want, r)
		}
	}
	sameRecs(t, replayAll(t, s), want)
	st := s.Stats()
	if st.Corrupt != 1 || st.CorruptBytes != int64(len(b))-victim.pos.Offset {
		t.Fatalf("stats %+v", st)
	}
	if l := lb.String(); !strings.Contains(l, "corrupt record") || !strings.Contains(l, segName(victim.pos.Segment)) ||
		!strings.Contains(l, fmt.Sprintf("offset=%d", victim.pos.Offset)) {
		t.Fatalf("log: %s", l)
	}
	s.Close()
}

// TestEveryByteFlipped damages each byte of a small spool in turn: Open
// never fails or panics, and whatever is replayed is an original record.
func TestEveryByteFlipped(t *testing.T) {
	src := t.TempDir()
	s, _ := openT(t, Options{Dir: src, Sync: SyncNever, SegmentBytes: 400})
	all := appendN(t, s, 1, 8)
	s.Ack(all[1].pos)
	s.Close()
	orig := map[Pos][]byte{}
	for _, r := range all {
		orig[r.pos] = r.p
	}
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		if e.Name() == "LOCK" {
			continue
		}
		full, _ := os.ReadFile(filepath.Join(src, e.Name()))
		for i := range full {
			dir := copyDir(t, src)
			b := slices.Clone(full)
			b[i] ^= 1 << (i % 8)
			os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600)
			s, _ := openT(t, Options{Dir: dir, Sync: SyncNever, SegmentBytes: 400})
			for _, r := range replayAll(t, s) {
				if want, ok := orig[r.pos]; !ok || !bytes.Equal(want, r.p) {
					t.Fatalf("%s byte %d: replayed a record that was never appended at %v", e.Name(), i, r.pos)
				}
			}
			if _, err := s.Append([]byte("x")); err != nil {
				t.Fatal(err)
			}
			s.Close()
		}
	}
}

func TestConcurrent(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncBatch, SyncAlways} {
		t.Run(pol.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := Options{Dir: dir, Sync: pol, SegmentBytes: 4096, SyncEvery: 2e6}
			s, _ := openT(t, o)
			const writers, per = 8, 150
			var wg sync.WaitGroup
			stop := make(chan struct{})
			seen := map[string]bool{}
			var consumerErr error
			done := make(chan struct{})
			go func() { // consumer: replay, ack what it saw
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					var last Pos
					var ok bool
					err := s.Replay(func(p Pos, b []byte) error {
						seen[string(b)] = true
						last, ok = p, true
						return nil
					})
					if err == nil && ok {
						err = s.Ack(last)
					}
					if err != nil {
						consumerErr = err
						return
					}
				}
			}()
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						var err error
						if i%10 == 0 {
							_, err = s.AppendBatch([][]byte{fmt.Appendf(nil, "w%d-%d", w, i), fmt.Appendf(nil, "w%d-%db", w, i)})
						} else {
							_, err = s.Append(fmt.Appendf(nil, "w%d-%d", w, i))
						}
						if err != nil {
							t.Error(err)
							return
						}
						_ = s.Size()
						_ = s.Stats()
					}
				}()
			}
			wg.Wait()
			close(stop)
			<-done
			if consumerErr != nil {
				t.Fatal(consumerErr)
			}
			for _, r := range replayAll(t, s) {
				seen[string(r.p)] = true
			}
			st := s.Stats()
			if want := writers * (per + per/10); len(seen) != want || st.Appended != uint64(want) {
				t.Fatalf("saw %d distinct, appended %d, want %d", len(seen), st.Appended, want)
			}
			if st.Acked+uint64(st.Pending) != st.Appended {
				t.Fatalf("stats %+v", st)
			}
			s.Close()
		})
	}
}

// TestBitRotLastSegment: a corrupt record in the middle of the segment
// being appended to seals it; appends go to a new segment and replay after
// a reopen.
func TestBitRotLastSegment(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, Sync: SyncNever}
	s, _ := openT(t, o)
	all := appendN(t, s, 1, 10)
	s.Close()
	victim := all[3]
	path := filepath.Join(dir, segName(victim.pos.Segment))
	b, _ := os.ReadFile(path)
	b[victim.pos.Offset+recHeaderSize] ^= 1
	os.WriteFile(path, b, 0o600)
	s, lb := openT(t, o)
	sameRecs(t, replayAll(t, s), all[:3])
	if !strings.Contains(lb.String(), "corrupt record") {
		t.Fatalf("log: %s", lb)
	}
	more := appendN(t, s, 50, 2)
	s.Close()
	s, _ = openT(t, o)
	defer s.Close()
	sameRecs(t, replayAll(t, s), append(slices.Clone(all[:3]), more...))
	if err := s.Ack(more[1].pos); err != nil {
		t.Fatal(err)
	}
	if files := segFiles(t, dir); len(files) != 1 {
		t.Fatalf("segments left: %v", files)
	}
}
