package audit_test

import (
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// memRec is the in-memory recorder the protocols' tests use.
type memRec struct{ testenv.Recorder }

// count is how many rows of kind were recorded.
func (m *memRec) count(kind string) int {
	n := 0
	for _, r := range m.Rows() {
		if r.Kind == kind {
			n++
		}
	}
	return n
}
