package postgres

import (
	"testing"

	"github.com/tollgate-dev/tollgate/host/event"
)

func TestCopyOut(t *testing.T) {
	for _, tc := range []struct {
		sql, query string
		f          copyFormat
		ok         bool
	}{
		{"COPY api_keys TO STDOUT", "SELECT * FROM api_keys", copyText, true},
		{`copy public."Keys" (id, secret) to stdout with (format csv, header)`, `SELECT id, secret FROM public."Keys"`, copyCSV, true},
		{"COPY (SELECT secret FROM k WHERE x = ')') TO STDOUT CSV;", "SELECT secret FROM k WHERE x = ')'", copyCSV, true},
		{"COPY k TO STDOUT (FORMAT binary)", "SELECT * FROM k", copyBinary, true},
		{"COPY k FROM STDIN", "", 0, false},
		{"COPY k TO STDOUT (DELIMITER '|')", "", 0, false},
		{"SELECT 1", "", 0, false},
	} {
		q, f, ok := copyOut(tc.sql)
		if ok != tc.ok || ok && (q != tc.query || f != tc.f) {
			t.Errorf("%s: got %q %v %v", tc.sql, q, f, ok)
		}
	}
}

func FuzzCopyLine(f *testing.F) {
	f.Add([]byte("1\tab\\tc\\\\\t\\N\n"), false)
	f.Add([]byte("1,\"a,\"\"b\",,\"\"\n"), true)
	f.Fuzz(func(t *testing.T, line []byte, csv bool) {
		fm := copyText
		if csv {
			fm = copyCSV
		}
		_, cells, ok := splitCopyLine(line, fm, nil, nil)
		if !ok {
			return
		}
		// What splits, rebuilds to something that splits the same way.
		out := appendCopyLine(nil, fm, cells)
		_, again, ok := splitCopyLine(out, fm, nil, nil)
		if !ok || !sameCells(cells, again) {
			t.Fatalf("%q → %q → %v (ok %v)", line, out, again, ok)
		}
	})
}

func sameCells(a, b []event.Cell) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Null != b[i].Null || string(a[i].Data) != string(b[i].Data) {
			return false
		}
	}
	return true
}
