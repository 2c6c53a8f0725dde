package approval

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Store keeps approval records where the next process (and, for a shared
// store, every replica) can read them. Save is called with every change of
// a record; Load returns the latest version of each.
type Store interface {
	Load() ([]Record, error)
	Save(Record) error
	Close() error
}

// FileStore is a JSON-lines log of record versions in the data directory:
// one line per change, fsynced, so a decision is on disk before the held
// request resumes. Open compacts it to the latest version of each record,
// dropping decided ones older than the retention (the audit trail keeps
// them for good). One process per file.
type FileStore struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// FileRetention is how long decided approvals stay in the file.
const FileRetention = 7 * 24 * time.Hour

// OpenFileStore opens (creating) the store at path.
func OpenFileStore(path string) (*FileStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("approval: store: %w", err)
	}
	recs, err := readLog(path)
	if err != nil {
		return nil, err
	}
	// Compact: the latest version of each record, through a temp file
	// and a rename, so a crash leaves the old log or the new one.
	cut := time.Now().Add(-FileRetention)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("approval: store: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, r := range recs {
		if r.State != StatePending && r.DecidedAt.Before(cut) {
			continue
		}
		enc.Encode(r)
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return nil, fmt.Errorf("approval: store: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("approval: store: %w", err)
	}
	af, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("approval: store: %w", err)
	}
	return &FileStore{path: path, f: af}, nil
}

func readLog(path string) ([]Record, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("approval: store: %w", err)
	}
	defer f.Close()
	latest := map[string]Record{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.ID == "" {
			// A torn last line from a crash mid-write: the version before
			// it stands.
			continue
		}
		latest[r.ID] = r
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("approval: store: %s: %w", path, err)
	}
	out := make([]Record, 0, len(latest))
	for _, r := range latest {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Load returns the latest version of each record.
func (s *FileStore) Load() ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return readLog(s.path)
}

// Save appends r and syncs the file.
func (s *FileStore) Save(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("approval: store closed")
	}
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		return err
	}
	return s.f.Sync()
}

// Close closes the file.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
