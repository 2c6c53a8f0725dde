package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"
	"unicode/utf8"
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

// EncodeFileLine is row as one JSON line of the file store (Row's JSON).
func EncodeFileLine(row Row) ([]byte, error) { return json.Marshal(row) }

// DecodeFileLine reverses EncodeFileLine.
func DecodeFileLine(line []byte) (Row, error) {
	var r Row
	err := json.Unmarshal(line, &r)
	return r, err
}

// rowJSON is Row without its JSON methods.
type rowJSON Row

// rowWithRaw is a row's JSON with raw_row.
type rowWithRaw struct {
	rowJSON
	Raw []byte `json:"raw_row,omitempty"`
}

// MarshalJSON writes the row's columns. JSON holds only UTF-8 and
// encoding/json replaces other bytes, which would change the row under
// its hash; so a row with such bytes also carries raw_row, its exact spool
// encoding (base64), which UnmarshalJSON prefers. Every JSON path (the
// file store, the admin API) then gives verify the bytes that were hashed.
func (r Row) MarshalJSON() ([]byte, error) {
	if validUTF8(&r) {
		return json.Marshal(rowJSON(r))
	}
	return json.Marshal(rowWithRaw{rowJSON(r), AppendRow(nil, &r)})
}

// UnmarshalJSON reads MarshalJSON's form. A raw_row must agree with the
// columns an analyst reads (up to the replaced bytes), or the row is
// refused.
func (r *Row) UnmarshalJSON(b []byte) error {
	var v rowWithRaw
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Raw == nil {
		*r = Row(v.rowJSON)
		return nil
	}
	raw, err := DecodeRow(v.Raw)
	if err != nil {
		return fmt.Errorf("audit: raw_row: %w", err)
	}
	shownJSON, err := json.Marshal(rowJSON(raw))
	if err != nil {
		return fmt.Errorf("audit: raw_row: %w", err)
	}
	var shown rowJSON
	if err := json.Unmarshal(shownJSON, &shown); err != nil || !reflect.DeepEqual(shown, v.rowJSON) {
		return errors.New("audit: raw_row does not match the row's columns")
	}
	*r = raw
	return nil
}

func validUTF8(r *Row) bool {
	for _, s := range [...]string{r.EventID, r.GatewayID, r.SessionID, r.Protocol, r.Listener, r.Target, r.Kind, r.RemoteAddr,
		r.Issuer, r.Subject, r.Email, r.AccessRule, r.Verdict, r.Plugin, r.Reason, r.Status, r.Error, r.ApprovalID,
		r.Approver, r.PrevHash, r.RowHash, r.Signature} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	for _, g := range r.Groups {
		if !utf8.ValidString(g) {
			return false
		}
	}
	for _, m := range [...]map[string]string{r.Claims, r.Request, r.Annotations} {
		for k, v := range m {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
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
