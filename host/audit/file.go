package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: recorder closed")

// FileRecorder appends rows as JSON lines. Rows go into a 64 KiB buffer
// that is flushed every FlushInterval, when it fills, and on Close, so a
// request waits at most for a page-cache write, never for fsync; a crash
// loses at most one interval of rows. (The ClickHouse pipeline, with its
// durable spool, is the store for production.)
type FileRecorder struct {
	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	closed bool
	err    error // first write error; reported by Record and Close

	stop chan struct{}
	done chan struct{}
}

// FlushInterval is how often buffered rows reach the file.
const FlushInterval = 200 * time.Millisecond

// OpenFile opens (or creates) path for appending.
func OpenFile(path string) (*FileRecorder, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	r := &FileRecorder{f: f, w: bufio.NewWriterSize(f, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go r.flushLoop()
	return r, nil
}

func (r *FileRecorder) Record(row Row) error {
	line, err := json.Marshal(row)
	if err != nil {
		return fmt.Errorf("audit: encode row: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.err != nil {
		return r.err
	}
	r.w.Write(line)
	if err := r.w.WriteByte('\n'); err != nil {
		r.err = fmt.Errorf("audit: write: %w", err)
		return r.err
	}
	return nil
}

func (r *FileRecorder) flushLoop() {
	defer close(r.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.mu.Lock()
			if err := r.w.Flush(); err != nil && r.err == nil {
				r.err = fmt.Errorf("audit: flush: %w", err)
			}
			r.mu.Unlock()
		}
	}
}

// Close flushes, syncs and closes the file.
func (r *FileRecorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done

	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.err
	if ferr := r.w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("audit: flush: %w", ferr)
	}
	if serr := r.f.Sync(); err == nil && serr != nil {
		err = fmt.Errorf("audit: sync: %w", serr)
	}
	if cerr := r.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("audit: close: %w", cerr)
	}
	return err
}
