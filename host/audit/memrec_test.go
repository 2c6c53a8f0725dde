package audit_test

import (
	"sync"

	"github.com/tollgate-dev/tollgate/host/audit"
)

type memRec struct {
	mu   sync.Mutex
	rows []audit.Row
}

func (m *memRec) Record(r audit.Row) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, r)
	return nil
}

func (m *memRec) Close() error { return nil }

func (m *memRec) count(kind string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.rows {
		if r.Kind == kind {
			n++
		}
	}
	return n
}
