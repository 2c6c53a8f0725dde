package testenv

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// Recorder keeps audit rows in memory, for tests that run a listener in
// their own process (the gateway binary's tests read its real store).
type Recorder struct {
	mu   sync.Mutex
	rows []audit.Row
}

func (m *Recorder) Record(r audit.Row) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, r)
	return nil
}

func (m *Recorder) Close() error { return nil }

// Rows is a copy of what was recorded so far.
func (m *Recorder) Rows() []audit.Row {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Row(nil), m.rows...)
}

// Wait returns the first row match accepts, polling for up to 10 s, and
// fails the test with every row recorded when none comes.
func (m *Recorder) Wait(t testing.TB, what string, match func(audit.Row) bool) audit.Row {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range m.Rows() {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(m.Rows(), "", "  ")
			t.Fatalf("no audit row %s; rows:\n%s", what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
